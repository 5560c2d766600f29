#!/usr/bin/env node
/**
 * dc-operator: entry point of the long-running processes (controller, webhook, sidecar, key
 * server), one subcommand each, registered below as they are written. Same command framework as
 * dcctl (framework/command.ts): flags validated up front, `--help` on every command.
 */
import { controller } from './commands/controller.js';
import { keyServer } from './commands/keyserver.js';
import { sidecar } from './commands/sidecar.js';
import { webhook } from './commands/webhook.js';
import { CommandRegistry, type ProgramContext } from './framework/registry.js';
import { isEntryPoint, processContext, unsupportedRuntime } from './framework/main.js';
import { buildInfo } from './framework/version.js';

export function dcOperatorCommands(): CommandRegistry {
  return new CommandRegistry({
    name: 'dc-operator',
    summary: 'Long-running processes of dc-operator (controller, webhook, sidecar, key server).',
    version: buildInfo,
  }).register(controller).register(keyServer).register(sidecar).register(webhook);
}

export function main(argv: readonly string[], ctx: ProgramContext = processContext()): Promise<number> {
  return dcOperatorCommands().run(argv, ctx);
}

if (isEntryPoint(import.meta.url)) {
  process.exitCode = unsupportedRuntime('dc-operator') ?? (await main(process.argv.slice(2)));
}
