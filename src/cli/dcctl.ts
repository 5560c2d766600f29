#!/usr/bin/env node
/**
 * dcctl: the developer's tool for dc-operator. Each subcommand lives in src/cli/commands/ and is
 * registered below; see framework/command.ts for how to write one.
 */
import { caCreate } from './commands/ca-create.js';
import { certCreate } from './commands/cert-create.js';
import { dcInspect } from './commands/dc-inspect.js';
import { dcIssue } from './commands/dc-issue.js';
import { probe } from './commands/probe.js';
import { serve } from './commands/serve.js';
import { CommandRegistry, type ProgramContext } from './framework/registry.js';
import { isEntryPoint, processContext, unsupportedRuntime } from './framework/main.js';
import { buildInfo } from './framework/version.js';

export function dcctlCommands(): CommandRegistry {
  return new CommandRegistry({
    name: 'dcctl',
    summary: 'Development PKI and delegated-credential tools for dc-operator.',
    version: buildInfo,
  })
    .register(caCreate)
    .register(certCreate)
    .register(dcIssue)
    .register(dcInspect)
    .register(serve)
    .register(probe);
}

export function main(argv: readonly string[], ctx: ProgramContext = processContext()): Promise<number> {
  return dcctlCommands().run(argv, ctx);
}

if (isEntryPoint(import.meta.url)) {
  process.exitCode = unsupportedRuntime('dcctl') ?? (await main(process.argv.slice(2)));
}
