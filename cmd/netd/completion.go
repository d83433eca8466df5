package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks netd itself for the words that may follow: urfave/cli
// answers --generate-bash-completion with the subcommands (or, after a
// dash, the flags) of the command line so far.
const bashCompletion = `# bash completion for netd (netd completion bash)
_netd_complete() {
	local cur=${COMP_WORDS[COMP_CWORD]} words
	if [[ $cur == -* ]]; then
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _netd_complete netd
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "Print the shell completion script (bash): source it, or install it as /usr/share/bash-completion/completions/netd",
		ArgsUsage: "bash",
		Action: func(c *cli.Context) error {
			if err := exactArgs(1)(c); err != nil {
				return err
			}
			if sh := c.Args().First(); sh != "bash" {
				return fmt.Errorf("unsupported shell %q: netd completion knows bash", sh)
			}
			_, err := fmt.Fprint(c.App.Writer, bashCompletion)
			return err
		},
	}
}
