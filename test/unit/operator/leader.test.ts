import assert from 'node:assert/strict';
import { it } from 'node:test';
import { missingLeaseNamespaceMessage } from '../../../src/operator/leader.js';

// The apiserver's 404 on creating a Lease says "namespaces "x" not found" and nothing about the
// flag; the controller's line says which namespace, how to create it and which flag moves it.
// (test/integration/operator-leader.test.ts checks the controller logs it, once, on a real 404.)
void it('a missing Lease namespace is named, with the command that creates it and the flag that moves it', () => {
  assert.equal(
    missingLeaseNamespaceMessage('dc-system', 'dc-operator-controller'),
    'leader election: cannot create the Lease dc-system/dc-operator-controller: namespace "dc-system" does not exist. ' +
      'Create it (kubectl create namespace dc-system), or run with --operator-namespace set to the namespace the controller runs in ' +
      '(default: $POD_NAMESPACE, else dc-operator); retrying until it exists',
  );
});
