/**
 * `metalplane completion bash|zsh`: a completion script generated from the command tree
 * (subcommands and options at each level), e.g. `source <(metalplane completion bash)`.
 * zsh uses the same function through bashcompinit.
 */
import type { Command } from 'commander';
import { UsageError } from '../os-config.ts';

/** Every command path ('' for the program itself) and the words completed after it. */
export function completionWords(program: Command): Map<string, string[]> {
  const table = new Map<string, string[]>();
  const walk = (command: Command, path: string) => {
    const options = command.options
      .filter((option) => !option.hidden)
      .flatMap((option) => [option.long ?? option.short ?? '']);
    const subcommands = command.commands.map((sub) => sub.name());
    table.set(path, [...subcommands, ...options.filter(Boolean), '--help']);
    for (const sub of command.commands) walk(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  walk(program, '');
  return table;
}

const quote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const table = completionWords(program);
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}_complete`;
  const paths = [...table.keys()].filter(Boolean);
  const lines = [
    `# ${name} completion for ${shell}: source <(${name} completion ${shell})`,
    ...(shell === 'zsh' ? ['autoload -U +X bashcompinit && bashcompinit'] : []),
    `${fn}() {`,
    `  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" word next i`,
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    `    word="\${COMP_WORDS[i]}"`,
    '    [[ $word == -* ]] && continue',
    `    next="\${path:+$path }$word"`,
    '    case "$next" in',
    `      ${paths.map(quote).join('|')}) path="$next" ;;`,
    '    esac',
    '  done',
    '  local words=""',
    '  case "$path" in',
    ...[...table.entries()].map(([path, words]) => `    ${quote(path)}) words=${quote(words.join(' '))} ;;`),
    '  esac',
    '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    '}',
    `complete -F ${fn} ${name}`,
    '',
  ];
  return lines.join('\n');
}

export function registerCompletionCommand(program: Command, out: (text: string) => void): void {
  program
    .command('completion <shell>')
    .description('print a bash or zsh completion script: source <(metalplane completion bash)')
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') throw new UsageError(`completion ${shell}: bash or zsh`);
      out(completionScript(program, shell).trimEnd());
    });
}
