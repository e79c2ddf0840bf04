package cli

import "github.com/spf13/cobra"

// newLogsCmd: placeholder until it lands (runtime, part 2).
func newLogsCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "logs", Short: "(runtime part 2)", Hidden: true, RunE: func(*cobra.Command, []string) error { return errUsage("logs is not implemented yet") }}
}
