import type { Command, Option } from "commander";
import { EXIT, fail } from "../common.js";
import { bashScript, type CommandNode, fishScript, zshScript } from "../completion-scripts.js";

/*
 * `muster completion bash|zsh|fish`: a completion script made from the program's own commands,
 * subcommands and options, so that it never lists a flag the CLI lacks.
 */

const SHELLS = { bash: bashScript, zsh: zshScript, fish: fishScript } as const;

/** A word a shell script may hold without quoting trouble: names, flags, simple choices. */
const PLAIN = /^[A-Za-z0-9][A-Za-z0-9._:@,+=/-]*$/;

function optionNode(o: Option): CommandNode["options"][number] {
  const takesValue = o.required || o.optional;
  return {
    ...(o.long !== undefined ? { long: o.long } : {}),
    ...(o.short !== undefined ? { short: o.short } : {}),
    takesValue,
    choices: (o.argChoices ?? []).filter((c) => PLAIN.test(c)),
    description: o.description,
  };
}

/** The tree of `cmd`: its visible subcommands and options, `--help` included. */
export function commandTree(cmd: Command): CommandNode {
  const hidden = (c: Command): boolean => (c as unknown as { _hidden?: boolean })._hidden === true;
  const options = cmd.options.filter((o) => !o.hidden).map(optionNode);
  options.push({ long: "--help", short: "-h", takesValue: false, choices: [], description: "show help" });
  return {
    name: cmd.name(),
    description: cmd.description(),
    options,
    commands: cmd.commands.filter((c) => !hidden(c) && PLAIN.test(c.name())).map(commandTree),
  };
}

/** The root of the program `cmd` belongs to. */
function rootOf(cmd: Command): Command {
  let c = cmd;
  while (c.parent !== null) c = c.parent;
  return c;
}

export function registerCompletion(program: Command): void {
  program
    .command("completion")
    .description("print a completion script for bash, zsh or fish, made from this CLI's commands and flags")
    .argument("<shell>", "bash, zsh or fish")
    .addHelpText(
      "after",
      `
Load it in the running shell, or install it where the shell looks:
  bash   source <(muster completion bash)     or save it as /etc/bash_completion.d/muster
  zsh    source <(muster completion zsh)      (after compinit) or save it as _muster in a $fpath folder
  fish   muster completion fish | source      or save it as ~/.config/fish/completions/muster.fish

Examples:
  muster completion bash > /etc/bash_completion.d/muster
  muster completion zsh > "\${fpath[1]}/_muster"
  muster completion fish > ~/.config/fish/completions/muster.fish`,
    )
    .action((shell: string, _flags: unknown, cmd: Command) => {
      if (!Object.hasOwn(SHELLS, shell))
        fail(`no completion for ${JSON.stringify(shell)}: give bash, zsh or fish`, EXIT.USAGE);
      process.stdout.write(SHELLS[shell as keyof typeof SHELLS](commandTree(rootOf(cmd))));
    });
}
