import { writeSync } from 'node:fs';
import { native } from '../native/binding';

const EXIT_CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

/**
 * How a training command answers SIGINT/SIGTERM (a terminal's Ctrl-C, systemd, a scheduler):
 * the first asks the run to stop after the current optimizer step and save; later ones only say
 * what is happening ("already stopping, saving checkpoint-N") and never interrupt the save; a third
 * SIGINT exits at once without saving, and says so. `plan()` describes what the stop will do.
 */
export class StopSignals {
  readonly controller = new AbortController();
  /** The exit code of the first signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP), 0 when none came. */
  code = 0;
  private interrupts = 0;
  private readonly handlers = new Map<NodeJS.Signals, () => void>();

  constructor(private readonly command: string, private readonly plan: () => string) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  install(): this {
    for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]) {
      const handler = () => this.receive(name);
      this.handlers.set(name, handler);
      process.on(name, handler);
    }
    return this;
  }

  uninstall(): void {
    for (const [name, handler] of this.handlers) process.off(name, handler);
    this.handlers.clear();
  }

  private receive(name: NodeJS.Signals): void {
    if (name === 'SIGINT') this.interrupts += 1;
    if (!this.controller.signal.aborted) {
      this.code = EXIT_CODES[name];
      this.say(`${name}: stopping after the current step (${this.plan()}); Ctrl-C twice more exits without saving`);
      this.controller.abort();
      return;
    }
    if (name === 'SIGINT' && this.interrupts >= 3) {
      this.say('third interrupt: exiting now without saving; the newest complete checkpoint is kept as it was');
      native().exitImmediately(this.code || 130);
    }
    this.say(`already stopping, ${this.plan()}`);
  }

  // Synchronous, so the line is out before anything else happens (stderr may be a pipe).
  private say(message: string): void {
    writeSync(2, `\ntorch-dpo ${this.command}: ${message}\n`);
  }
}
