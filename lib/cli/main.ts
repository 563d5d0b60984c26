#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { packageVersion } from '../native/package-root';
import { runEval, runExport, runPrecomputeRef, runReport } from './commands';
import { runConfig } from './config-command';
import { runDemo } from './demo';
import { runFrontier } from '../demo/frontier';
import { runDoctor } from './doctor';
import { runGenerate } from './generate';
import { exitWithLauncher } from './launch-link';
import { LAUNCH_USAGE, runLaunch } from './launch';
import { describeFailure, runTrain } from './train';

const collect = (value: string, previous: string[]) => [...previous, value];
const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`'${value}' is not a positive integer.`);
  return n;
};
// --config is checked in the action, not by commander: its missing-option check runs before the
// unknown-option one, so `--confg x` would be reported as a missing --config instead of a typo.
const needsConfig = (command: Command, options: { config?: string }) => {
  if (!options.config) command.error("required option '-c, --config <file>' not specified", { exitCode: 2, code: 'commander.missingMandatoryOptionValue' });
};
const withConfig = (command: Command) => command
  .option('-c, --config <file>', 'YAML or JSON config with TRL\'s option names (`torch-dpo config` lists them)')
  .option('--set <key=value>', 'override an option (repeatable; dotted keys reach nested ones; values parse as JSON when they can)', collect, []);

/** The CLI: one Command per subcommand, each with its own --help; `run` receives the exit code. */
export function buildProgram(run: (code: Promise<number> | number) => void): Command {
  const program = new Command('torch-dpo')
    .description('Direct Preference Optimization on libtorch: TRL-compatible configs, fused DPO ops, data parallel')
    .version(packageVersion(), '-V, --version', 'print the torch-dpo version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: () => {} }); // usage errors are printed once, on one line, by main()
  program.command('demo').description('train a tiny model to prefer positive reviews and show before/after; `demo frontier`: the DPO paper\'s reward–KL frontier against best-of-N')
    .argument('[experiment]', 'frontier: DPO at several β against best-of-N sampling (reward against KL)')
    .option('--dir <dir>', 'workspace folder (default torch-dpo-demo, or torch-dpo-frontier)')
    .option('--sft-steps <n>', 'steps of the SFT warm-up', positiveInt, 400)
    .option('--dpo-steps <n>', 'steps of DPO (default 40; frontier: 60 per β)', positiveInt)
    .option('--json', 'end with a one-line JSON summary')
    .action((experiment: string | undefined, o, cmd: Command) => {
      if (experiment !== undefined && experiment !== 'frontier') cmd.error(`unknown experiment '${experiment}' (choices: frontier)`, { exitCode: 2, code: 'commander.invalidArgument' });
      run(experiment === 'frontier' ? runFrontier(o) : runDemo(o));
    });
  withConfig(program.command('train').description('DPO training from a config file (Ctrl-C finishes the step, saves and exits)'))
    .option('--dry-run', 'load the model and data, print the start summary and plan, and exit without training or touching output_dir')
    .action((o, cmd: Command) => run((needsConfig(cmd, o), runTrain(o))));
  withConfig(program.command('eval').description('evaluate on eval_dataset and print the eval_ metrics as JSON'))
    .option('--checkpoint <dir>', 'evaluate this checkpoint\'s weights')
    .action((o, cmd: Command) => run((needsConfig(cmd, o), runEval(o))));
  withConfig(program.command('precompute-ref').description('compute and cache the reference log-probs (precompute_ref_log_probs)'))
    .action((o, cmd: Command) => run((needsConfig(cmd, o), runPrecomputeRef(o))));
  withConfig(program.command('export').description('write a checkpoint as HF safetensors + config + tokenizer and TorchScript model.pt (use_peft: the PEFT adapter, or with --merge the merged model)'))
    .requiredOption('--checkpoint <dir>', 'the checkpoint folder')
    .requiredOption('--out <dir>', 'where to write')
    .option('--merge', 'use_peft: write the model with the adapter merged in (W + scaling·B·A) as HF safetensors')
    .addOption(new Option('--dtype <dtype>', 'convert the weights').choices(['float32', 'bfloat16', 'float16']))
    .action((o, cmd: Command) => run((needsConfig(cmd, o), runExport(o))));
  const number = (value: string) => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`'${value}' is not a number.`);
    return n;
  };
  program.command('generate').description('continue prompts with a model (KV cache for the built-in architectures); one JSON line per prompt')
    .requiredOption('--model <dir>', 'a model folder (HF layout or an export) with its tokenizer')
    .requiredOption('--prompts <file>', 'JSONL/JSON/Parquet rows: a string, {"prompt": …} or chat messages')
    .option('--chat', 'render text prompts as a user message with the chat template (message rows always are)')
    .option('--out <file>', 'write the JSON lines here (atomically) instead of stdout')
    // Defaults come from generationOptionsSchema (lib/generation/generation-options.ts), their one place.
    .option('--max-new-tokens <n>', 'tokens to generate at most (default 64)', positiveInt)
    .option('--temperature <t>', 'default 1; 0: greedy', number)
    .option('--top-k <k>', 'default 0: off', number)
    .option('--top-p <p>', 'default 1: off', number)
    .option('--seed <n>', 'sampling seed, default 0 (row i draws from its own stream)', number)
    .option('--stop <text>', 'a stop string (repeatable)', collect, [])
    .option('--batch-size <n>', 'prompts per forward (default 64)', positiveInt)
    .option('--device <device>', 'auto, cpu, cuda or cuda:N', 'auto')
    .addOption(new Option('--dtype <dtype>', 'load the weights in this dtype').choices(['float32', 'bfloat16', 'float16', 'float64']))
    .action((o) => run(runGenerate(o)));
  program.command('report').description('write <output_dir>/report.html from its metrics.jsonl and run.json')
    .argument('<output_dir>', 'a training output_dir')
    .action((dir: string) => run(runReport(dir)));
  program.command('config').description('list every option with type, default and meaning, or write a starter config')
    .option('--init [file]', 'write a starter YAML (default torch-dpo.yaml)')
    .option('--force', 'with --init: replace an existing file')
    .option('--markdown', 'print the options as a Markdown table')
    .action((o) => run(runConfig(o)));
  // launch passes everything after -- to the workers, so it parses its own flags (and prints its own help).
  const launch = program.command('launch').description('run N worker processes with torchrun\'s environment (--nproc-per-node N -- train …)')
    .helpOption(false).allowUnknownOption().allowExcessArguments().argument('[args...]')
    .action((args: string[]) => {
      const own = args.indexOf('--') < 0 ? args : args.slice(0, args.indexOf('--'));
      run(own.includes('--help') || own.includes('-h') ? (process.stdout.write(LAUNCH_USAGE), 0) : runLaunch(args, __filename));
    });
  launch.helpInformation = () => LAUNCH_USAGE;
  program.command('doctor').description('libtorch, CUDA, threads, BLAS and addon facts of this machine')
    .option('--json', 'as JSON')
    .action((o) => run(runDoctor(o)));
  return program;
}

/** Runs the CLI; resolves to the exit code (2 for usage errors, printed on one line). */
export async function main(argv: string[]): Promise<number> {
  let result: Promise<number> | number = 0;
  const program = buildProgram((code) => { result = code; });
  if (argv.length === 0) {
    program.outputHelp();
    return 0;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(err.code)) return 0;
    const command = argv.find((a) => program.commands.some((c) => c.name() === a));
    const usage = command ? `torch-dpo ${command} --help` : 'torch-dpo --help';
    // commander's "error: unknown option '--confg'\n(Did you mean --config?)" as one line.
    const message = err.message.replace(/^error: /, '').replace(/\n\(Did you mean (.*)\)/, ' (did you mean $1)').split('\n')[0];
    process.stderr.write(`torch-dpo${command ? ` ${command}` : ''}: ${message}; ${usage} lists the options\n`);
    return 2;
  }
  return result;
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
