package cli

import "github.com/spf13/cobra"

// newStatsCmd: placeholder until it lands (runtime, part 2).
func newStatsCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "stats", Short: "(runtime part 2)", Hidden: true, RunE: func(*cobra.Command, []string) error { return errUsage("stats is not implemented yet") }}
}

// newPauseCmd: placeholder until it lands (runtime, part 2).
func newPauseCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "pause", Short: "(runtime part 2)", Hidden: true, RunE: func(*cobra.Command, []string) error { return errUsage("pause is not implemented yet") }}
}

// newUnpauseCmd: placeholder until it lands (runtime, part 2).
func newUnpauseCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "unpause", Short: "(runtime part 2)", Hidden: true, RunE: func(*cobra.Command, []string) error { return errUsage("unpause is not implemented yet") }}
}
