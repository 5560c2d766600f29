/**
 * A program's subcommands (dcctl, dc-operator): selects the command from the leading words of
 * argv, prints help for the program, a command group ("dcctl ca") or a command, and turns
 * every error into one line on stderr and an exit code. No stack traces for user errors.
 */
import { CommandFailed, EXIT_FAILURE, EXIT_USAGE, InputError, UsageError } from './errors.js';
import { errorJson, requestedFormat } from './output.js';
import type { Command, CommandContext } from './command.js';
import { formatVersion, type BuildInfo } from './version.js';

export interface ProgramInfo {
  readonly name: string;
  readonly summary: string;
  /** Extra text after the command list. */
  readonly footer?: string;
  /** What `PROGRAM --version` reports (framework/version.ts buildInfo); no --version without it. */
  readonly version?: (env: ProgramContext['env']) => BuildInfo;
}

/** Context without the command name, which the registry fills in. */
export type ProgramContext = Omit<CommandContext, 'commandName'>;

export class CommandRegistry {
  private readonly commands: Command[] = [];

  constructor(readonly program: ProgramInfo) {}

  register(command: Command): this {
    const key = command.path.join(' ');
    if (command.path.length === 0) throw new Error('a command needs at least one word');
    if (this.commands.some((c) => c.path.join(' ') === key)) throw new Error(`command "${key}" registered twice`);
    this.commands.push(command);
    return this;
  }

  list(): readonly Command[] {
    return [...this.commands].sort((a, b) => a.path.join(' ').localeCompare(b.path.join(' ')));
  }

  /** Runs argv (without node and script) and returns the exit code; never throws. */
  async run(argv: readonly string[], ctx: ProgramContext): Promise<number> {
    let commandName = this.program.name;
    try {
      if (argv[0] === 'help') return await this.run([...argv.slice(1), '--help'], ctx);
      if (argv[0] === '--version' && this.program.version) {
        if (argv.length > 1) throw new UsageError(`--version takes no other arguments, got "${argv[1]}"`);
        ctx.stdout(formatVersion(this.program.name, this.program.version(ctx.env)));
        return 0;
      }
      const command = this.find(argv);
      if (command) {
        commandName = [this.program.name, ...command.path].join(' ');
        return await command.execute(argv.slice(command.path.length), { ...ctx, commandName });
      }
      const words = leadingWords(argv);
      const wantsHelp = argv.includes('--help') || argv.includes('-h');
      const group = this.longestGroup(words);
      if (group.length > 0) commandName = [this.program.name, ...group].join(' ');
      if (wantsHelp && (group.length === words.length || words.length === 0)) {
        ctx.stdout(this.help(group));
        return 0;
      }
      if (words.length === 0) {
        if (argv.length === 0) {
          ctx.stderr(this.help([]));
          return EXIT_USAGE;
        }
        throw new UsageError(`expected a command before ${argv[0]} (run '${this.program.name} --help')`);
      }
      const choices = this.list().filter((c) => startsWith(c.path, group)).map((c) => c.path.slice(group.length).join(' '));
      if (group.length === words.length) {
        throw new UsageError(`missing subcommand; one of: ${choices.join(', ')}`);
      }
      const unknown = words[group.length]!;
      throw new UsageError(`unknown command "${unknown}"${choices.length ? `; one of: ${choices.join(', ')}` : ''} (run '${commandName} --help')`);
    } catch (e) {
      return report(e, commandName, ctx, requestedFormat(argv) === 'json');
    }
  }

  /** The command whose path is the longest prefix of argv's words. */
  private find(argv: readonly string[]): Command | undefined {
    let best: Command | undefined;
    for (const c of this.commands) {
      if (startsWith(argv, c.path) && (!best || c.path.length > best.path.length)) best = c;
    }
    return best;
  }

  /** The longest prefix of `words` that starts some command's path. */
  private longestGroup(words: readonly string[]): string[] {
    let n = 0;
    for (const c of this.commands) {
      let k = 0;
      while (k < words.length && k < c.path.length && c.path[k] === words[k]) k++;
      n = Math.max(n, k);
    }
    return words.slice(0, n);
  }

  help(group: readonly string[]): string {
    const name = [this.program.name, ...group].join(' ');
    const cmds = this.list().filter((c) => startsWith(c.path, group));
    const out = [`Usage: ${name} <command> [flags]`, '', this.program.summary, '', 'Commands:'];
    if (cmds.length === 0) out.push('  (none yet)');
    const width = Math.max(0, ...cmds.map((c) => c.path.join(' ').length)) + 2;
    for (const c of cmds) out.push(`  ${c.path.join(' ').padEnd(width)}${c.summary}`);
    if (group.length === 0) {
      out.push('', 'Flags:', '  -h, --help   show this help');
      if (this.program.version) out.push('  --version    print the version, the commit and the Node.js and OpenSSL versions');
    }
    out.push('', `Run '${this.program.name} <command> --help' for the flags and exit codes of a command.`);
    if (this.program.footer) out.push('', this.program.footer);
    return out.join('\n') + '\n';
  }
}

function leadingWords(argv: readonly string[]): string[] {
  const words: string[] = [];
  for (const a of argv) {
    if (a.startsWith('-')) break;
    words.push(a);
  }
  return words;
}

function startsWith(list: readonly string[], prefix: readonly string[]): boolean {
  return prefix.length <= list.length && prefix.every((w, i) => list[i] === w);
}

/** The error as one line on stderr (one JSON object with `json`), and its exit code. */
function report(e: unknown, commandName: string, ctx: ProgramContext, json: boolean): number {
  const say = (kind: 'usage' | 'input' | 'failed' | 'internal', message: string, exitCode: number, flag?: string): number => {
    if (json) ctx.stderr(errorJson({ command: commandName, kind, message, exitCode, ...(flag ? { flag } : {}) }));
    else ctx.stderr(`${commandName}: ${message}\n`);
    return exitCode;
  };
  if (e instanceof UsageError) return say('usage', e.message, EXIT_USAGE, e.flag);
  if (e instanceof InputError) return say('input', e.message, e.exitCode);
  if (e instanceof CommandFailed) return say('failed', e.message, e.exitCode);
  const err = e instanceof Error ? e : new Error(String(e));
  const debug = ctx.env.DC_DEBUG !== undefined && ctx.env.DC_DEBUG !== '' && ctx.env.DC_DEBUG !== '0';
  say('internal', `internal error: ${err.message.split('\n')[0]}${debug ? '' : ' (set DC_DEBUG=1 for details)'}`, EXIT_FAILURE);
  if (debug && err.stack) ctx.stderr(`${err.stack}\n`);
  return EXIT_FAILURE;
}
