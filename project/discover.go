package project

import (
	"os"
	"path/filepath"
)

// ComposeFileNames are the file names discovery looks for, in order of
// preference; fig's names come last.
var ComposeFileNames = []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml", "fig.yml", "fig.yaml"}

// overrideFileNames are loaded after a discovered compose file found in the
// same directory, as compose does. fig files have no override.
var overrideFileNames = []string{"compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml", "docker-compose.override.yml"}

// discover looks for a project file in dir and then in each parent. It
// returns the files to load (the main file and, for compose names, an
// override file next to it) and any other candidate it passed over.
func discover(dir string) (files, ignored []string, err error) {
	for {
		var found []string
		for _, n := range ComposeFileNames {
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				found = append(found, p)
			}
		}
		if len(found) > 0 {
			files = []string{found[0]}
			ignored = found[1:]
			if base := filepath.Base(found[0]); base != "fig.yml" && base != "fig.yaml" {
				for _, n := range overrideFileNames {
					p := filepath.Join(dir, n)
					if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
						files = append(files, p)
						break
					}
				}
			}
			return files, ignored, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, nil, &Error{notFound: true,
				Msg:  "no project file found in this directory or any parent (looked for compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml, fig.yml, fig.yaml)",
				Hint: "cd into the project or name the file with -f"}
		}
		dir = parent
	}
}
