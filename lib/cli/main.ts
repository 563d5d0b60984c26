#!/usr/bin/env node
import { runDoctor } from './doctor';
import { DEMO_USAGE, runDemo } from './demo';
import { describeFailure, runTrain, TRAIN_USAGE } from './train';

const USAGE = `usage: torch-dpo <command> [options]

commands:
  demo [--json]     train a tiny model to prefer positive reviews and show before/after
  train --config F  DPO training (YAML/JSON config with TRL's names; --set key=value overrides)
  doctor [--json]   libtorch, CUDA, threads, BLAS and addon facts of this machine
  help              this text
`;

type Command = (args: string[]) => number | Promise<number>;
const COMMANDS: Record<string, Command> = {
  doctor: runDoctor,
  train: runTrain,
  demo: runDemo,
  help: () => {
    process.stdout.write(USAGE);
    return 0;
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name = 'help', ...rest] = argv;
  const command = COMMANDS[name === '--help' || name === '-h' ? 'help' : name];
  if (!command) {
    process.stderr.write(`torch-dpo: unknown command '${name}'\n${USAGE}`);
    return 2;
  }
  if (rest.includes('--help') && name !== 'help') {
    process.stdout.write(name === 'train' ? TRAIN_USAGE : name === 'demo' ? DEMO_USAGE : USAGE);
    return 0;
  }
  return command(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      process.stderr.write(`torch-dpo: ${describeFailure(err)}\n`);
      process.exitCode = 1;
    },
  );
}
