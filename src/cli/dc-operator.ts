#!/usr/bin/env node
/**
 * dc-operator: entry point of the long-running processes (controller, webhook, sidecar, key
 * server), one subcommand each, registered below as they are written. Same command framework as
 * dcctl (framework/command.ts): flags validated up front, `--help` on every command.
 *
 * Each command's module is imported only when it runs: the sidecar must not carry the
 * controller's Kubernetes client in its heap (docs/architecture.md, "Hot paths"), and what it
 * imports comes from Node's compile cache (framework/compile-cache.ts), enabled before.
 */
import type { Command } from './framework/command.js';
import { enableModuleCompileCache } from './framework/compile-cache.js';
import { CommandRegistry, type ProgramContext } from './framework/registry.js';
import { isEntryPoint, processContext, unsupportedRuntime } from './framework/main.js';
import { buildInfo } from './framework/version.js';

const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  controller: async () => (await import('./commands/controller.js')).controller,
  keyserver: async () => (await import('./commands/keyserver.js')).keyServer,
  sidecar: async () => (await import('./commands/sidecar.js')).sidecar,
  webhook: async () => (await import('./commands/webhook.js')).webhook,
};

/**
 * The registry for `argv`: only the named command when argv starts with one, every command
 * otherwise (help, errors that list the choices).
 */
export async function dcOperatorCommands(argv: readonly string[] = []): Promise<CommandRegistry> {
  const named = argv[0] !== undefined && Object.hasOwn(COMMANDS, argv[0]) ? [argv[0]] : Object.keys(COMMANDS);
  const registry = new CommandRegistry({
    name: 'dc-operator',
    summary: 'Long-running processes of dc-operator (controller, webhook, sidecar, key server).',
    version: buildInfo,
  });
  for (const command of await Promise.all(named.map((name) => COMMANDS[name]!()))) registry.register(command);
  return registry;
}

export async function main(argv: readonly string[], ctx: ProgramContext = processContext()): Promise<number> {
  return (await dcOperatorCommands(argv)).run(argv, ctx);
}

if (isEntryPoint(import.meta.url)) {
  const unsupported = unsupportedRuntime('dc-operator');
  // Before the command's module is imported: it and everything it imports come from the cache.
  if (unsupported === undefined) enableModuleCompileCache();
  process.exitCode = unsupported ?? (await main(process.argv.slice(2)));
}
