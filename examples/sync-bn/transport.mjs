/**
 * The one thing SyncBatchNorm needs from a transport: an all-gather of Float64Arrays. Every
 * participant calls `allGather(mine)` with its packed partial and gets every participant's, in any
 * order (the library's merges are order-independent, bit for bit).
 *
 * This file has the worker_threads version: workers post their partial to the main thread, which
 * relays each one to every worker as it arrives (a star; a mesh of MessageChannels works the same).
 * Any other transport only has to implement the same `allGather`: see README.md next to this file.
 */

/**
 * Worker side. `port` is `parentPort` (or any MessagePort to the relay); `world` is the number of
 * participants. Calls must be made in the same sequence on every participant (one per partial),
 * which is what a training step does.
 */
export function workerTransport(port, world) {
  let round = 0;
  const inbox = new Map(); // round → Float64Array[]
  const waiting = new Map(); // round → resolve
  port.on('message', (msg) => {
    if (msg?.type !== 'gathered') return;
    const list = inbox.get(msg.round) ?? [];
    list.push(msg.values);
    inbox.set(msg.round, list);
    if (list.length === world) {
      inbox.delete(msg.round);
      waiting.get(msg.round)?.(list);
      waiting.delete(msg.round);
    }
  });
  return {
    /** @param {Float64Array} values @returns {Promise<Float64Array[]>} */
    allGather(values) {
      const r = round++;
      const done = new Promise((resolve) => {
        const early = inbox.get(r);
        if (early && early.length === world) {
          inbox.delete(r);
          resolve(early);
        } else waiting.set(r, resolve);
      });
      // Structured clone copies the Float64Array; transferring its buffer would also work.
      port.postMessage({ type: 'gather', round: r, values });
      return done;
    },
  };
}

/** Main-thread relay: forwards every `gather` message from any worker to all workers. */
export function relay(workers) {
  for (const w of workers) {
    w.on('message', (msg) => {
      if (msg?.type !== 'gather') return;
      for (const other of workers) other.postMessage({ type: 'gathered', round: msg.round, values: msg.values });
    });
  }
}
