// The Dockerfile, read without a Docker engine: shared by the unit tests that hold other build
// paths (scripts/e2e/image.sh) to what it says.

export interface Instruction {
  op: string;
  args: string;
}

export interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Dockerfile → stages of instructions (line continuations joined, comments dropped, ARGs before FROM resolved). */
export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (current === '' && /^\s*#/.test(line)) continue;
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' ';
      continue;
    }
    current += line;
    if (current.trim()) logical.push(current.trim());
    current = '';
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\w+)\s+(.*)$/.exec(l);
    if (!m?.[1] || m[2] === undefined) throw new Error(`cannot parse Dockerfile line: ${l}`);
    const op = m[1].toUpperCase();
    const args = m[2];
    if (op === 'ARG' && stages.length === 0) {
      const [k, v] = args.split('=');
      if (k && v) globalArgs.set(k, v);
      continue;
    }
    if (op === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!fm?.[1]) throw new Error(`cannot parse FROM ${args}`);
      const from = fm[1].replace(/\$\{(\w+)\}/g, (_, k: string) => globalArgs.get(k) ?? `\${${k}}`);
      stages.push({ from, ...(fm[2] ? { name: fm[2] } : {}), instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`${op} before the first FROM`);
    stage.instructions.push({ op, args });
  }
  return stages;
}
