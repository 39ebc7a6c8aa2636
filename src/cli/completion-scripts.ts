import { VERSION } from "../internal/version.js";

/*
 * Completion scripts for bash, zsh and fish, made from a tree of commands and options. Each
 * script walks the words typed so far (skipping options and the values they take) to find the
 * command being typed, then offers its subcommands, its flags, or the choices of the flag
 * before the cursor; anything else falls back to file names.
 */

export interface OptionNode {
  long?: string;
  short?: string;
  /** The option takes a value (`--server <url>`). */
  takesValue: boolean;
  /** The values it takes, when they are a fixed list. */
  choices: string[];
  description: string;
}

export interface CommandNode {
  name: string;
  description: string;
  options: OptionNode[];
  commands: CommandNode[];
}

interface Entry {
  /** The words after the program's name: `""`, `"token"`, `"token create"`. */
  path: string;
  node: CommandNode;
}

/** Every command of the tree with its path, the program first. */
function entries(root: CommandNode): Entry[] {
  const out: Entry[] = [];
  const walk = (node: CommandNode, path: string): void => {
    out.push({ path, node });
    for (const sub of node.commands) walk(sub, path === "" ? sub.name : `${path} ${sub.name}`);
  };
  walk(root, "");
  return out;
}

/** The option's spellings: `-o`, `--output`. */
const flagsOf = (o: OptionNode): string[] => [o.short, o.long].filter((f): f is string => f !== undefined);

/** A POSIX shell word in single quotes (bash, zsh). */
const sq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** A fish word in single quotes: backslash and quote escaped. */
const fq = (s: string): string => `'${s.replace(/[\\']/g, (c) => `\\${c}`)}'`;

/** A description on one line, short enough for a completion menu. */
function brief(text: string): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length <= 90 ? one : `${one.slice(0, 89)}…`;
}

/** `case` arms of a shell function: one pattern list and one body per entry. */
function arms(rows: Array<{ patterns: string[]; body: string }>, indent: string): string {
  return rows
    .filter((r) => r.patterns.length > 0)
    .map((r) => `${indent}${r.patterns.map(sq).join("|")}) ${r.body} ;;`)
    .join("\n");
}

/** `"agents|--server"` patterns of the options that take a value, and of those with choices. */
function valueArms(
  all: Entry[],
  body: (o: OptionNode) => string | undefined,
): Array<{ patterns: string[]; body: string }> {
  const rows: Array<{ patterns: string[]; body: string }> = [];
  for (const { path, node } of all)
    for (const o of node.options) {
      const b = o.takesValue ? body(o) : undefined;
      if (b !== undefined) rows.push({ patterns: flagsOf(o).map((f) => `${path}|${f}`), body: b });
    }
  return rows;
}

const header = (shell: string): string =>
  `# ${shell} completion for muster ${VERSION}, made by \`muster completion ${shell}\` from its commands and flags`;

export function bashScript(root: CommandNode): string {
  const all = entries(root);
  const subs = arms(
    all
      .filter((e) => e.node.commands.length > 0)
      .map((e) => ({ patterns: [e.path], body: `echo ${sq(e.node.commands.map((c) => c.name).join(" "))}` })),
    "    ",
  );
  const flags = arms(
    all.map((e) => ({ patterns: [e.path], body: `echo ${sq(e.node.options.flatMap(flagsOf).join(" "))}` })),
    "    ",
  );
  const takes = arms(
    valueArms(all, () => "return 0"),
    "    ",
  );
  const choices = arms(
    valueArms(all, (o) => (o.choices.length > 0 ? `echo ${sq(o.choices.join(" "))}` : undefined)),
    "    ",
  );
  return `${header("bash")}
# Load it with: source <(muster completion bash); or save it as /etc/bash_completion.d/muster

_muster_subcommands() {
  case "$1" in
${subs}
  esac
}

_muster_flags() {
  case "$1" in
${flags}
  esac
}

_muster_takes_value() {
  case "$1|$2" in
${takes}
  esac
  return 1
}

_muster_choices() {
  case "$1|$2" in
${choices}
  esac
}

_muster() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmdpath="" word opt="" value="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    [[ "$word" == "=" ]] && continue
    if [[ -n "$value" ]]; then
      value=""
      continue
    fi
    case "$word" in
      --*=*) continue ;;
      -*)
        if _muster_takes_value "$cmdpath" "$word"; then
          value=1
          opt="$word"
        fi
        continue
        ;;
    esac
    if [[ " $(_muster_subcommands "$cmdpath") " == *" $word "* ]]; then
      cmdpath="\${cmdpath:+$cmdpath }$word"
    fi
  done
  COMPREPLY=()
  if [[ -n "$value" ]]; then
    local choices
    choices="$(_muster_choices "$cmdpath" "$opt")"
    [[ -n "$choices" ]] && COMPREPLY=($(compgen -W "$choices" -- "$cur"))
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_muster_flags "$cmdpath")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_muster_subcommands "$cmdpath")" -- "$cur"))
  fi
  return 0
}

complete -o default -F _muster muster
`;
}

export function zshScript(root: CommandNode): string {
  const all = entries(root);
  const described = (items: Array<[string, string]>): string =>
    `reply=(${items.map(([name, d]) => sq(`${name}:${brief(d)}`)).join(" ")})`;
  const subs = arms(
    all
      .filter((e) => e.node.commands.length > 0)
      .map((e) => ({
        patterns: [e.path],
        body: described(e.node.commands.map((c) => [c.name, c.description])),
      })),
    "    ",
  );
  const flags = arms(
    all.map((e) => ({
      patterns: [e.path],
      body: described(
        e.node.options.flatMap((o) => flagsOf(o).map((f): [string, string] => [f, o.description])),
      ),
    })),
    "    ",
  );
  const takes = arms(
    valueArms(all, () => "return 0"),
    "    ",
  );
  const choices = arms(
    valueArms(all, (o) => (o.choices.length > 0 ? `reply=(${o.choices.map(sq).join(" ")})` : undefined)),
    "    ",
  );
  return `#compdef muster
${header("zsh")}
# Load it with: source <(muster completion zsh) after compinit; or save it as _muster in a $fpath folder

_muster_subcommands() {
  reply=()
  case "$1" in
${subs}
  esac
}

_muster_flags() {
  reply=()
  case "$1" in
${flags}
  esac
}

_muster_takes_value() {
  case "$1|$2" in
${takes}
  esac
  return 1
}

_muster_choices() {
  reply=()
  case "$1|$2" in
${choices}
  esac
}

_muster() {
  local cmdpath="" word opt="" value="" i
  local -a reply names
  for (( i = 2; i < CURRENT; i++ )); do
    word="\${words[i]}"
    if [[ -n "$value" ]]; then
      value=""
      continue
    fi
    case "$word" in
      --*=*) continue ;;
      -*)
        if _muster_takes_value "$cmdpath" "$word"; then
          value=1
          opt="$word"
        fi
        continue
        ;;
    esac
    _muster_subcommands "$cmdpath"
    names=("\${reply[@]%%:*}")
    if (( \${names[(Ie)$word]} )); then
      cmdpath="\${cmdpath:+$cmdpath }$word"
    fi
  done
  if [[ -n "$value" ]]; then
    _muster_choices "$cmdpath" "$opt"
    if (( \${#reply} )); then compadd -- "\${reply[@]}"; else _files; fi
    return
  fi
  if [[ "\${words[CURRENT]}" == -* ]]; then
    _muster_flags "$cmdpath"
    _describe -t options 'option' reply
    return
  fi
  _muster_subcommands "$cmdpath"
  if (( \${#reply} )); then _describe -t commands 'command' reply; else _files; fi
}

if [[ "\${funcstack[1]}" == "_muster" ]]; then
  _muster "$@"
else
  compdef _muster muster
fi
`;
}

export function fishScript(root: CommandNode): string {
  const all = entries(root);
  const subs = all
    .filter((e) => e.node.commands.length > 0)
    .map(
      (e) =>
        `        case ${fq(e.path)}\n            printf '%s\\n' ${e.node.commands.map((c) => fq(c.name)).join(" ")}`,
    )
    .join("\n");
  const takes = valueArms(all, () => "")
    .flatMap((r) => r.patterns)
    .map(fq);
  const lines: string[] = [];
  for (const { path, node } of all) {
    const at = fq(`__muster_at ${JSON.stringify(path)}`);
    for (const c of node.commands)
      lines.push(`complete -c muster -f -n ${at} -a ${fq(c.name)} -d ${fq(brief(c.description))}`);
    for (const o of node.options) {
      const spell = [
        ...(o.short !== undefined ? [`-s ${o.short.slice(1)}`] : []),
        ...(o.long !== undefined ? [`-l ${o.long.slice(2)}`] : []),
      ].join(" ");
      const value = !o.takesValue ? "" : o.choices.length > 0 ? ` -x -a ${fq(o.choices.join(" "))}` : " -r";
      lines.push(`complete -c muster -n ${at} ${spell}${value} -d ${fq(brief(o.description))}`);
    }
  }
  return `${header("fish")}
# Load it with: muster completion fish | source; or save it as ~/.config/fish/completions/muster.fish

function __muster_subcommands
    switch "$argv[1]"
${subs}
    end
end

function __muster_takes_value
    switch "$argv[1]|$argv[2]"
        case ${takes.join(" ")}
            return 0
    end
    return 1
end

# The command being typed: the subcommand words so far, options and their values skipped.
function __muster_path
    set -l words (commandline -opc)
    set -e words[1]
    set -l cmdpath ''
    set -l value 0
    for word in $words
        if test $value = 1
            set value 0
            continue
        end
        switch $word
            case '--*=*'
                continue
            case '-*'
                if __muster_takes_value "$cmdpath" $word
                    set value 1
                end
                continue
        end
        if contains -- $word (__muster_subcommands "$cmdpath")
            if test -z "$cmdpath"
                set cmdpath $word
            else
                set cmdpath "$cmdpath $word"
            end
        end
    end
    echo $cmdpath
end

function __muster_at
    set -l p (__muster_path)
    test "$p" = "$argv[1]"
end

complete -c muster -e
${lines.join("\n")}
`;
}
