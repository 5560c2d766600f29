/**
 * A stop with a deadline. kubelet sends SIGKILL when a pod's grace period ends; a stop that waits
 * on something that never comes (a request the apiserver never answers: client-node's requests take
 * no abort signal) would be killed mid-way with nothing said. Settling first lets the process say
 * why and exit on its own terms.
 */
export async function stopWithin(stop: Promise<void>, ms: number): Promise<'stopped' | 'late'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
    timer.unref(); // the deadline alone never keeps the process alive
  });
  try {
    return await Promise.race([stop.then(() => 'stopped' as const), late]);
  } finally {
    clearTimeout(timer);
  }
}
