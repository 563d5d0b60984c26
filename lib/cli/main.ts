#!/usr/bin/env node
import { runDoctor } from './doctor';
import { EVAL_USAGE, EXPORT_USAGE, PRECOMPUTE_USAGE, REPORT_USAGE, runEval, runExport, runPrecomputeRef, runReport } from './commands';
import { DEMO_USAGE, runDemo } from './demo';
import { LAUNCH_USAGE, runLaunch } from './launch';
import { describeFailure, runTrain, TRAIN_USAGE } from './train';
import { exitWithLauncher } from './launch-link';

const USAGE = `usage: torch-dpo <command> [options]

commands:
  demo [--json]     train a tiny model to prefer positive reviews and show before/after
  train --config F  DPO training (YAML/JSON config with TRL's names; --set key=value overrides)
  eval --config F   evaluate on eval_dataset (--checkpoint DIR for a checkpoint's weights)
  precompute-ref    compute and cache reference log-probs (--config F)
  export            a checkpoint as HF safetensors + TorchScript (--config F --checkpoint DIR --out DIR)
  report DIR        write DIR/report.html from DIR/metrics.jsonl
  launch            run N worker processes with torchrun's environment (--nproc-per-node N -- train …)
  doctor [--json]   libtorch, CUDA, threads, BLAS and addon facts of this machine
  help              this text
`;

type Command = (args: string[]) => number | Promise<number>;
const COMMANDS: Record<string, Command> = {
  doctor: runDoctor,
  train: runTrain,
  demo: runDemo,
  eval: runEval,
  'precompute-ref': runPrecomputeRef,
  export: runExport,
  report: runReport,
  launch: (args) => runLaunch(args, __filename),
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
  if (rest.includes('--help') && name !== 'help' && !(name === 'launch' && rest.indexOf('--') >= 0 && rest.indexOf('--') < rest.indexOf('--help'))) {
    const usages: Record<string, string> = { launch: LAUNCH_USAGE, train: TRAIN_USAGE, demo: DEMO_USAGE, eval: EVAL_USAGE, 'precompute-ref': PRECOMPUTE_USAGE, export: EXPORT_USAGE, report: REPORT_USAGE };
    process.stdout.write(usages[name] ?? USAGE);
    return 0;
  }
  try {
    return await command(rest);
  } catch (err) {
    // node:util parseArgs: an unknown or malformed flag is a usage error, not a failure.
    const code = (err as { code?: string }).code ?? '';
    if (!code.startsWith('ERR_PARSE_ARGS')) throw err;
    process.stderr.write(`torch-dpo ${name}: ${(err as Error).message.split('\n')[0]} (torch-dpo ${name} --help lists the options)\n`);
    return 2;
  }
}

if (require.main === module) {
  exitWithLauncher();
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      process.stderr.write(`torch-dpo: ${describeFailure(err)}\n`);
      process.exitCode = 1;
    },
  );
}
