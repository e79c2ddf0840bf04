package cli

import "github.com/spf13/cobra"

// newCpCmd: placeholder until it lands (runtime, part 2).
func newCpCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "cp", Short: "(runtime part 2)", Hidden: true, RunE: func(*cobra.Command, []string) error { return errUsage("cp is not implemented yet") }}
}

// newDiffCmd: placeholder until it lands (runtime, part 2).
func newDiffCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "diff", Short: "(runtime part 2)", Hidden: true, RunE: func(*cobra.Command, []string) error { return errUsage("diff is not implemented yet") }}
}

// newExportCmd: placeholder until it lands (runtime, part 2).
func newExportCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "export", Short: "(runtime part 2)", Hidden: true, RunE: func(*cobra.Command, []string) error { return errUsage("export is not implemented yet") }}
}

// newCommitCmd: placeholder until it lands (runtime, part 2).
func newCommitCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "commit", Short: "(runtime part 2)", Hidden: true, RunE: func(*cobra.Command, []string) error { return errUsage("commit is not implemented yet") }}
}
