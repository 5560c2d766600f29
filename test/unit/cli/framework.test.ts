import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defineCommand, type CommandContext } from '../../../src/cli/framework/command.js';
import { CommandFailed, InputError, UsageError } from '../../../src/cli/framework/errors.js';
import { CommandRegistry, type ProgramContext } from '../../../src/cli/framework/registry.js';
import { integerFlag, ipFlag, oneOf } from '../../../src/cli/framework/flags.js';
import { namespaceList } from '../../../src/cli/commands/controller.js';
import { writeOutputFiles } from '../../../src/cli/framework/files.js';
import { buildInfo, gitHead } from '../../../src/cli/framework/version.js';
import { outputFormat, outputOption, printResult, requestedFormat, toYaml } from '../../../src/cli/framework/output.js';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function capture(env: Record<string, string> = {}): ProgramContext & { out: string; err: string } {
  const c = {
    out: '',
    err: '',
    stdout(t: string) {
      c.out += t;
    },
    stderr(t: string) {
      c.err += t;
    },
    cwd: '/',
    env,
    now: () => new Date(0),
  };
  return c;
}

const seen: Array<{ config: unknown; commandName: string }> = [];

const greet = defineCommand({
  path: ['greet', 'person'],
  summary: 'Say hello',
  options: {
    name: { type: 'string', value: 'NAME', description: 'who', required: true },
    times: { type: 'string', value: 'N', description: 'how often', default: '1' },
    tag: { type: 'string', multiple: true, value: 'TAG', description: 'labels' },
    loud: { type: 'boolean', description: 'shout', short: 'l' },
  },
  positionals: [{ name: 'GREETING', description: 'the word to use' }],
  validate(v, positionals) {
    // The types follow the option specs: required/defaulted strings are strings, lists are arrays.
    const name: string = v.name;
    const tags: readonly string[] = v.tag;
    const loud: boolean = v.loud;
    return { name, times: integerFlag('--times', v.times, 1, 3), tags, loud, greeting: positionals[0] ?? 'hello' };
  },
  async run(config, ctx: CommandContext) {
    seen.push({ config, commandName: ctx.commandName });
    ctx.stdout(`${config.greeting} ${config.name}\n`.repeat(config.times));
    return 0;
  },
});

const explode = defineCommand({
  path: ['explode'],
  summary: 'Fails in various ways',
  options: { how: { type: 'string', value: 'HOW', description: 'usage|failed|bug', required: true } },
  validate: (v) => v.how,
  async run(how) {
    if (how === 'usage') throw new UsageError('bad combination', '--how');
    if (how === 'failed') throw new CommandFailed('the server said no', 3);
    if (how === 'input') throw new InputError('--how: cannot read how.txt: no such file or directory');
    throw new Error('undefined is not a function\nsecond line');
  },
});

function program(): CommandRegistry {
  return new CommandRegistry({ name: 'prog', summary: 'A test program.' }).register(greet).register(explode);
}

void describe('command framework', () => {
  void it('parses typed flags, defaults, repeatable flags, short flags and positionals', async () => {
    const ctx = capture();
    seen.length = 0;
    assert.equal(await program().run(['greet', 'person', '--name', 'Ada', '--tag', 'a', '--tag', 'b', '-l', '--times=2', 'hi'], ctx), 0);
    assert.equal(ctx.out, 'hi Ada\nhi Ada\n');
    assert.deepEqual(seen[0], { config: { name: 'Ada', times: 2, tags: ['a', 'b'], loud: true, greeting: 'hi' }, commandName: 'prog greet person' });
    await program().run(['greet', 'person', '--name', 'Bo'], capture());
    assert.deepEqual(seen[1]?.config, { name: 'Bo', times: 1, tags: [], loud: false, greeting: 'hello' });
  });

  void it('prints a help page with required, repeatable and default annotations', async () => {
    const ctx = capture();
    assert.equal(await program().run(['greet', 'person', '--help'], ctx), 0);
    assert.match(ctx.out, /^Usage: prog greet person --name NAME \[GREETING\] \[flags\]\n/);
    assert.match(ctx.out, /--name NAME +who \(required\)/);
    assert.match(ctx.out, /--times N +how often \(default: 1\)/);
    assert.match(ctx.out, /--tag TAG +labels \(repeatable\)/);
    assert.match(ctx.out, /-l, --loud +shout/);
    assert.match(ctx.out, /-h, --help +show this help/);
    assert.match(ctx.out, /GREETING +the word to use/);
  });

  void it('accepts "help <command>" as well as "<command> --help"', async () => {
    const a = capture();
    const b = capture();
    await program().run(['help', 'greet', 'person'], a);
    await program().run(['greet', 'person', '-h'], b);
    assert.equal(a.out, b.out);
  });

  void it('lists the commands of a group', async () => {
    const ctx = capture();
    assert.equal(await program().run(['greet', '--help'], ctx), 0);
    assert.match(ctx.out, /greet person +Say hello/);
    assert.doesNotMatch(ctx.out, /explode/);
  });

  void it('says "(none yet)" for a program without commands', async () => {
    const ctx = capture();
    assert.equal(await new CommandRegistry({ name: 'empty', summary: 'Nothing.' }).run(['--help'], ctx), 0);
    assert.match(ctx.out, /Commands:\n {2}\(none yet\)\n/);
  });

  void it('turns usage errors into one line and exit code 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['greet', 'person'], /^prog greet person: --name is required\n$/],
      [['greet', 'person', '--name'], /^prog greet person: --name needs a value\n$/],
      [['greet', 'person', '--name', 'A', '--times', '9'], /^prog greet person: --times: must be between 1 and 3, got 9\n$/],
      [['greet', 'person', '--name', 'A', '--what'], /^prog greet person: unknown flag --what\n$/],
      [['greet', 'person', '--name', 'A', '--loud=yes'], /^prog greet person: --loud takes no value\n$/],
      [['greet', 'person', '--name', 'A', 'x', 'y'], /^prog greet person: unexpected argument "y"\n$/],
      [['greet', 'person', '--name', ''], /^prog greet person: --name needs a non-empty value\n$/],
      [['greet'], /^prog greet: missing subcommand; one of: person\n$/],
      [['nope'], /^prog: unknown command "nope"; one of: explode, greet person \(run 'prog --help'\)\n$/],
      [['--name', 'x'], /^prog: expected a command before --name/],
      [['explode', '--how', 'usage'], /^prog explode: --how: bad combination\n$/],
    ];
    for (const [argv, pattern] of cases) {
      const ctx = capture();
      assert.equal(await program().run(argv, ctx), 2, argv.join(' '));
      assert.match(ctx.err, pattern);
    }
  });

  void it('reports a failed command with its exit code and a bug as an internal error without a stack', async () => {
    const failed = capture();
    assert.equal(await program().run(['explode', '--how', 'failed'], failed), 3);
    assert.equal(failed.err, 'prog explode: the server said no\n');

    const bug = capture();
    assert.equal(await program().run(['explode', '--how', 'bug'], bug), 1);
    assert.equal(bug.err, 'prog explode: internal error: undefined is not a function (set DC_DEBUG=1 for details)\n');

    const debug = capture({ DC_DEBUG: '1' });
    await program().run(['explode', '--how', 'bug'], debug);
    assert.match(debug.err, /internal error: undefined is not a function\nError: undefined is not a function\nsecond line\n\s+at /);
  });

  void it('documents the exit codes in --help: the defaults, refined per command', async () => {
    const ctx = capture();
    await program().run(['explode', '--help'], ctx);
    assert.match(ctx.out, /\nExit status:\n {2}0 {2}success\n {2}1 {2}the command could not be carried out[^\n]*\n {2}2 {2}usage or input error[^\n]*\n/);
    const answer = defineCommand({
      path: ['answer'],
      summary: 'Answers yes or no',
      options: {},
      exitStatus: { 0: 'yes', 1: 'no' },
      validate: () => undefined,
      run: () => Promise.resolve(0),
    });
    const a = capture();
    await new CommandRegistry({ name: 'prog', summary: '' }).register(answer).run(['answer', '--help'], a);
    assert.match(a.out, /\nExit status:\n {2}0 {2}yes\n {2}1 {2}no\n {2}2 {2}usage or input error/);
  });

  void it('reports an input error (an unreadable or unsuitable input) with exit code 2, like a usage error', async () => {
    const ctx = capture();
    assert.equal(await program().run(['explode', '--how', 'input'], ctx), 2);
    assert.equal(ctx.err, 'prog explode: --how: cannot read how.txt: no such file or directory\n');
  });

  void it('refuses to register the same command twice', () => {
    assert.throws(() => program().register(greet), /registered twice/);
  });

  void it('validates common flag values with messages that name the flag', () => {
    assert.throws(() => oneOf('--color', 'teal', ['red', 'blue'], 'color'), /^UsageError: --color: unknown color "teal"; allowed: red, blue$/);
    assert.equal(oneOf('--color', 'red', ['red', 'blue']), 'red');
    assert.throws(() => integerFlag('--n', '1.5', 1, 9), /--n: must be a whole number, got "1\.5"/);
    assert.throws(() => ipFlag('--ip', 'localhost'), /--ip: "localhost" is not an IPv4 or IPv6 address/);
    assert.equal(ipFlag('--ip', '::1'), '::1');
  });

  void it('reads `controller --namespace` given several times or comma-separated, each name checked', () => {
    assert.deepEqual(namespaceList([]), []);
    assert.deepEqual(namespaceList(['shop', 'pay,shop', ' ops ']), ['shop', 'pay', 'ops']);
    assert.throws(() => namespaceList(['shop,Pay']), /^UsageError: --namespace: "Pay" is not a namespace name$/);
    assert.throws(() => namespaceList(['shop,']), /"" is not a namespace name/);
  });
});

void describe('writeOutputFiles', () => {
  const files = (tag: string) => [
    { name: 'tls.crt', content: `cert ${tag}\n`, mode: 0o644 },
    { name: 'tls.key', content: `key ${tag}\n`, mode: 0o600 },
    { name: 'ca.crt', content: `ca ${tag}\n`, mode: 0o644 },
  ];

  void it('writes every file with its mode, and replaces them all with force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'write-out-'));
    try {
      await writeOutputFiles(join(dir, 'out'), files('old'), { force: false, flag: '--out' });
      assert.equal(statSync(join(dir, 'out/tls.key')).mode & 0o777, 0o600);
      await assert.rejects(writeOutputFiles(join(dir, 'out'), files('new'), { force: false, flag: '--out' }), /tls\.crt already exists \(use --force to overwrite\)/);
      await writeOutputFiles(join(dir, 'out'), files('new'), { force: true, flag: '--out' });
      assert.equal(readFileSync(join(dir, 'out/tls.key'), 'utf8'), 'key new\n');
      assert.equal(statSync(join(dir, 'out/tls.key')).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(join(dir, 'out')).sort(), ['ca.crt', 'tls.crt', 'tls.key'], 'no temporary or backup files left');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('changes nothing when a rename fails after others succeeded: the old files are put back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'write-out-'));
    try {
      await writeOutputFiles(dir, files('old').slice(0, 2), { force: false, flag: '--out' });
      mkdirSync(join(dir, 'ca.crt')); // the last target is a directory: its rename fails after tls.crt and tls.key were renamed
      await assert.rejects(writeOutputFiles(dir, files('new'), { force: true, flag: '--out' }), /^CommandFailed: cannot write .*ca\.crt: is a directory; no file was changed$/);
      assert.equal(readFileSync(join(dir, 'tls.crt'), 'utf8'), 'cert old\n');
      assert.equal(readFileSync(join(dir, 'tls.key'), 'utf8'), 'key old\n');
      assert.equal(statSync(join(dir, 'tls.key')).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dir).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('removes a new file it had renamed into place, and the directory it created, on failure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'write-out-'));
    try {
      mkdirSync(join(dir, 'half'));
      writeFileSync(join(dir, 'half/tls.key'), 'key old\n', { mode: 0o600 });
      mkdirSync(join(dir, 'half/ca.crt'));
      await assert.rejects(writeOutputFiles(join(dir, 'half'), files('new'), { force: true, flag: '--out' }), /ca\.crt: is a directory; no file was changed/);
      assert.deepEqual(readdirSync(join(dir, 'half')).sort(), ['ca.crt', 'tls.key'], 'tls.crt, new, is gone again');
      assert.equal(readFileSync(join(dir, 'half/tls.key'), 'utf8'), 'key old\n');
      // A file that cannot be written at all (its parent is missing) in a directory made for it.
      await assert.rejects(writeOutputFiles(join(dir, 'fresh/deeper'), [{ name: 'no/such/parent', content: 'x', mode: 0o600 }], { force: false, flag: '--out' }), /no file was changed/);
      assert.equal(existsSync(join(dir, 'fresh')), false, 'the directories it created are removed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

void describe('--version', () => {
  const info = { version: '1.2.3', commit: 'c0ffee', node: 'v24.0.0', openssl: '3.5.0' };
  const versioned = () => new CommandRegistry({ name: 'prog', summary: 'A test program.', version: () => info }).register(greet);

  void it('prints the version, commit, Node.js and OpenSSL versions and exits 0; lists --version in the program help', async () => {
    const ctx = capture();
    assert.equal(await versioned().run(['--version'], ctx), 0);
    assert.equal(ctx.out, 'prog 1.2.3\ncommit:  c0ffee\nnode:    v24.0.0\nopenssl: 3.5.0\n');
    const help = capture();
    await versioned().run(['--help'], help);
    assert.match(help.out, /\n {2}--version +print the version/);
    const extra = capture();
    assert.equal(await versioned().run(['--version', 'greet'], extra), 2);
    assert.equal(extra.err, 'prog: --version takes no other arguments, got "greet"\n');
    // A program without version information has no --version.
    assert.equal(await program().run(['--version'], capture()), 2);
  });

  void it('takes the commit from $DC_OPERATOR_COMMIT, else the git HEAD of a checkout, else "unknown", without running git', () => {
    const root = mkdtempSync(join(tmpdir(), 'version-'));
    try {
      writeFileSync(join(root, 'package.json'), JSON.stringify({ version: '9.8.7' }));
      const hash = 'a'.repeat(40);
      assert.deepEqual(buildInfo({}, root), { version: '9.8.7', commit: 'unknown', node: process.version, openssl: process.versions.openssl });
      assert.equal(buildInfo({ DC_OPERATOR_COMMIT: 'deadbeef' }, root).commit, 'deadbeef');
      // A checkout on a branch whose ref is packed, then loose; a detached HEAD.
      mkdirSync(join(root, '.git/refs/heads'), { recursive: true });
      writeFileSync(join(root, '.git/HEAD'), 'ref: refs/heads/main\n');
      writeFileSync(join(root, '.git/packed-refs'), `# pack-refs with: peeled\n${hash} refs/heads/main\n`);
      assert.equal(gitHead(root), hash);
      writeFileSync(join(root, '.git/refs/heads/main'), `${'b'.repeat(40)}\n`);
      assert.equal(buildInfo({}, root).commit, 'b'.repeat(40));
      writeFileSync(join(root, '.git/HEAD'), `${'c'.repeat(40)}\n`);
      assert.equal(gitHead(root), 'c'.repeat(40));
      // A worktree: .git is a file naming its git directory, refs live in the common directory.
      const wt = join(root, 'wt');
      mkdirSync(join(root, '.git/worktrees/wt'), { recursive: true });
      mkdirSync(wt);
      writeFileSync(join(wt, '.git'), `gitdir: ${join(root, '.git/worktrees/wt')}\n`);
      writeFileSync(join(root, '.git/worktrees/wt/HEAD'), 'ref: refs/heads/main\n');
      writeFileSync(join(root, '.git/worktrees/wt/commondir'), '../..\n');
      assert.equal(gitHead(wt), 'b'.repeat(40));
      assert.equal(gitHead(join(root, 'nowhere')), undefined);
      assert.equal(buildInfo({}, join(root, 'nowhere')).version, 'unknown');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

void describe('-o text|json|yaml', () => {
  const show = defineCommand({
    path: ['show'],
    summary: 'Shows data',
    options: { output: outputOption, json: { type: 'boolean', description: 'same as -o json' }, fail: { type: 'string', value: 'HOW', description: 'input|bug' } },
    validate: (v) => ({ format: outputFormat(v.output, v.json), fail: v.fail }),
    async run(c, ctx) {
      if (c.fail === 'input') throw new InputError('--fail: cannot read x: no such file or directory');
      if (c.fail === 'bug') throw new Error('oops');
      printResult(ctx, c.format, { name: 'a', count: 1, list: ['x', '1.5'] }, () => 'name a\n');
      return 0;
    },
  });
  const prog = () => new CommandRegistry({ name: 'prog', summary: '' }).register(show);

  void it('prints the result as text, JSON or YAML', async () => {
    for (const [argv, expected] of [
      [['show'], 'name a\n'],
      [['show', '-o', 'json'], '{\n  "name": "a",\n  "count": 1,\n  "list": [\n    "x",\n    "1.5"\n  ]\n}\n'],
      [['show', '--json'], '{\n  "name": "a",\n  "count": 1,\n  "list": [\n    "x",\n    "1.5"\n  ]\n}\n'],
      [['show', '--output=yaml'], 'name: a\ncount: 1\nlist:\n  - x\n  - "1.5"\n'],
    ] as const) {
      const ctx = capture();
      assert.equal(await prog().run(argv, ctx), 0);
      assert.equal(ctx.out, expected, argv.join(' '));
    }
  });

  void it('reports errors as one JSON object on stderr in json mode, also usage errors found before -o is parsed', async () => {
    const cases: Array<[string[], number, object]> = [
      [['show', '-o', 'json', '--bogus'], 2, { command: 'prog show', kind: 'usage', message: 'unknown flag --bogus', exitCode: 2 }],
      [['show', '-ojson', '--fail'], 2, { command: 'prog show', kind: 'usage', message: '--fail needs a value', exitCode: 2, flag: '--fail' }],
      [['show', '--json', '--fail', 'input'], 2, { command: 'prog show', kind: 'input', message: '--fail: cannot read x: no such file or directory', exitCode: 2 }],
      [['show', '-o', 'json', '--fail', 'bug'], 1, { command: 'prog show', kind: 'internal', message: 'internal error: oops (set DC_DEBUG=1 for details)', exitCode: 1 }],
      [['nope', '-o', 'json'], 2, { command: 'prog', kind: 'usage', message: 'unknown command "nope"; one of: show (run \'prog --help\')', exitCode: 2 }],
    ];
    for (const [argv, code, error] of cases) {
      const ctx = capture();
      assert.equal(await prog().run(argv, ctx), code, argv.join(' '));
      assert.equal(ctx.out, '');
      assert.match(ctx.err, /^\{[^\n]*\}\n$/, 'one line');
      assert.deepEqual(JSON.parse(ctx.err), { error }, argv.join(' '));
    }
    const text = capture();
    assert.equal(await prog().run(['show', '-o', 'yaml', '--fail', 'input'], text), 2);
    assert.equal(text.err, 'prog show: --fail: cannot read x: no such file or directory\n');
    const both = capture();
    assert.equal(await prog().run(['show', '--json', '-o', 'yaml'], both), 2);
    assert.match(both.err, /--json contradicts --output yaml/);
  });

  void it('reads the requested format from argv and writes YAML that quotes what could be misread', () => {
    assert.equal(requestedFormat(['x', '-o', 'json']), 'json');
    assert.equal(requestedFormat(['x', '-oyaml']), 'yaml');
    assert.equal(requestedFormat(['x', '--output=json']), 'json');
    assert.equal(requestedFormat(['x', '--', '-o', 'json']), 'text');
    assert.equal(requestedFormat(['x', '-o']), 'text');
    assert.equal(
      toYaml({ a: 'yes', b: '', c: null, d: '2026-01-01T00:00:00Z', e: '::1', f: { g: [{ h: 1, i: 'two words' }, []] }, k: [], l: {}, m: true, n: 'x: y', off: '.inf' }),
      'a: "yes"\nb: ""\nc: null\nd: "2026-01-01T00:00:00Z"\ne: "::1"\nf:\n  g:\n    - h: 1\n      i: "two words"\n    - []\nk: []\nl: {}\nm: true\n"n": "x: y"\n"off": ".inf"\n',
    );
  });
});
