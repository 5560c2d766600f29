// A development CA and a certificate that may delegate (DelegationUsage), made by dcctl while the
// cluster starts (the runner starts it); this step waits for it.
import { defineStep } from '../step.js';

export const step = defineStep({
  title: () => 'creating a dev CA and a certificate with DelegationUsage',
  run: (ctx) => ctx.pki,
  done: (_, ctx) => `dcctl: dev CA + certificate for ${ctx.serverName === 'localhost' ? '' : `${ctx.serverName}/`}localhost/127.0.0.1 with DelegationUsage (1.3.6.1.4.1.44363.44)`,
});
