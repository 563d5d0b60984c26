/**
 * Lets the event loop run its poll phase (where signal handlers fire) before going on: two
 * setImmediate turns, because the first may start inside the check phase that follows a poll.
 * Long stretches of work (a checkpoint save, a training step) call it at their boundaries so that a
 * Ctrl-C that came during synchronous work is heard there and not only after everything finished.
 */
export async function letPendingSignalsIn(): Promise<void> {
  for (let turn = 0; turn < 2; turn += 1) await new Promise((resolve) => setImmediate(resolve));
}
