#!/usr/bin/env node
/**
 * dcctl: the developer's tool for dc-operator. Each subcommand lives in src/cli/commands/ and is
 * registered below; see framework/command.ts for how to write one.
 *
 * As in dc-operator, a command's module is imported only when it runs (by the first word of its
 * path), after Node's compile cache is enabled (framework/compile-cache.ts): statically imported
 * modules are compiled before the entry point's first line runs, so they could not use it.
 */
import type { Command } from './framework/command.js';
import { enableModuleCompileCache } from './framework/compile-cache.js';
import { CommandRegistry, type ProgramContext } from './framework/registry.js';
import { isEntryPoint, processContext, unsupportedRuntime } from './framework/main.js';
import { buildInfo } from './framework/version.js';

/** Commands by the first word of their path, in the order `--help` lists them. */
const COMMANDS: Readonly<Record<string, () => Promise<readonly Command[]>>> = {
  ca: async () => [(await import('./commands/ca-create.js')).caCreate],
  cert: async () => [(await import('./commands/cert-create.js')).certCreate],
  dc: async () => [(await import('./commands/dc-issue.js')).dcIssue, (await import('./commands/dc-inspect.js')).dcInspect],
  serve: async () => [(await import('./commands/serve.js')).serve],
  probe: async () => [(await import('./commands/probe.js')).probe],
};

/**
 * The registry for `argv`: only the commands of its first word when it names some, every command
 * otherwise (help, errors that list the choices).
 */
export async function dcctlCommands(argv: readonly string[] = []): Promise<CommandRegistry> {
  const named = argv[0] !== undefined && Object.hasOwn(COMMANDS, argv[0]) ? [argv[0]] : Object.keys(COMMANDS);
  const registry = new CommandRegistry({
    name: 'dcctl',
    summary: 'Development PKI and delegated-credential tools for dc-operator.',
    version: buildInfo,
  });
  for (const commands of await Promise.all(named.map((name) => COMMANDS[name]!()))) for (const command of commands) registry.register(command);
  return registry;
}

export async function main(argv: readonly string[], ctx: ProgramContext = processContext()): Promise<number> {
  return (await dcctlCommands(argv)).run(argv, ctx);
}

if (isEntryPoint(import.meta.url)) {
  const unsupported = unsupportedRuntime('dcctl');
  if (unsupported === undefined) enableModuleCompileCache();
  process.exitCode = unsupported ?? (await main(process.argv.slice(2)));
}
