// `podnetctl completion bash|zsh`: shell completion scripts generated from one command tree, so a
// new command completes once it is listed here.
import { CtlError } from './errors.js';

/** Command words, each with the words that may follow it. */
export const COMMAND_TREE: Record<string, string[]> = {
  node: ['status'],
  cluster: ['status'],
  routes: [],
  ipam: ['show', 'check', 'release'],
  policy: [],
  trace: [],
  completion: ['bash', 'zsh'],
};

export const GLOBAL_FLAGS = [
  '-o',
  '--output',
  '--agent',
  '--kubeconfig',
  '--netns',
  '--ip',
  '--port',
  '--protocol',
  '-h',
  '--help',
];
/** trace's --protocol values. */
export const PROTOCOL_WORDS = ['tcp', 'udp', 'sctp', 'icmp'];
export const OUTPUTS = ['table', 'json', 'yaml'];

function bash(): string {
  const subs = Object.entries(COMMAND_TREE)
    .filter(([, v]) => v.length)
    .map(([k, v]) => `    ${k}) words="${v.join(' ')}" ;;`)
    .join('\n');
  return `# podnetctl bash completion: source <(podnetctl completion bash)
_podnetctl() {
  local cur prev words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -o|--output) COMPREPLY=($(compgen -W "${OUTPUTS.join(' ')}" -- "$cur")); return ;;
    --kubeconfig) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --protocol) COMPREPLY=($(compgen -W "${PROTOCOL_WORDS.join(' ')}" -- "$cur")); return ;;
    --agent|--netns|--ip|--port) return ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "${GLOBAL_FLAGS.join(' ')}" -- "$cur")); return
  fi
  local i cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -o|--output|--agent|--kubeconfig|--netns|--ip|--port|--protocol) ((i++)) ;;
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [[ -z "$cmd" ]]; then
    words="${Object.keys(COMMAND_TREE).join(' ')}"
  else
    words=""
    case "$cmd" in
${subs}
    esac
    [[ "$prev" != "$cmd" ]] && words=""
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _podnetctl podnetctl`;
}

function zsh(): string {
  const subs = Object.entries(COMMAND_TREE)
    .filter(([, v]) => v.length)
    .map(([k, v]) => `        ${k}) _values 'subcommand' ${v.join(' ')} ;;`)
    .join('\n');
  return `#compdef podnetctl
# podnetctl zsh completion: source <(podnetctl completion zsh), or save as _podnetctl in $fpath
_podnetctl() {
  _arguments -C \\
    '(-o --output)'{-o,--output}'[output format]:format:(${OUTPUTS.join(' ')})' \\
    '--agent[agent status URL]:url:' \\
    '--kubeconfig[kubeconfig file]:file:_files' \\
    '--netns[network namespace]:name:' \\
    '--ip[address]:address:' \\
    '--port[trace: port of the policy verdict]:port:' \\
    '--protocol[trace: protocol of the policy verdict]:protocol:(${PROTOCOL_WORDS.join(' ')})' \\
    '(-h --help)'{-h,--help}'[help]' \\
    '1:command:(${Object.keys(COMMAND_TREE).join(' ')})' \\
    '*::arg:->args'
  case $state in
    args)
      case $words[1] in
${subs}
      esac ;;
  esac
}
compdef _podnetctl podnetctl`;
}

export function completion(shell: string | undefined): string {
  if (shell === 'bash') return bash();
  if (shell === 'zsh') return zsh();
  throw new CtlError('CTL_ERR_USAGE', `completion ${JSON.stringify(shell ?? '')}: use bash or zsh`);
}
