// Package display renders berth's output: tables, and (as the reconciler
// lands) progress events in tty, plain, json and quiet forms.
package display

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Table writes rows in aligned columns separated by three spaces, the way
// docker compose prints its tables. Trailing blanks are trimmed.
type Table struct {
	header []string
	rows   [][]string
}

// NewTable starts a table with a header row.
func NewTable(header ...string) *Table { return &Table{header: header} }

// Row adds a row; missing cells are empty.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// Write renders the table.
func (t *Table) Write(w io.Writer) error {
	all := append([][]string{t.header}, t.rows...)
	width := make([]int, len(t.header))
	for _, r := range all {
		for i := 0; i < len(r) && i < len(width); i++ {
			if n := utf8.RuneCountInString(r[i]); n > width[i] {
				width[i] = n
			}
		}
	}
	var b strings.Builder
	for _, r := range all {
		var line strings.Builder
		for i := range width {
			cell := ""
			if i < len(r) {
				cell = r[i]
			}
			line.WriteString(cell)
			if i < len(width)-1 {
				line.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell)+3))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteString("\n")
	}
	_, err := fmt.Fprint(w, b.String())
	return err
}
