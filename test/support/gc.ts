import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Collects garbage until native finalizers have run. The addon's live-tensor count is process-wide and
 * jest reuses worker processes across test files, so leak tests first clear what earlier files left.
 */
export async function settleGarbage(): Promise<void> {
  for (let i = 0; i < 3; i += 1) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}
