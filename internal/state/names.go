package state

import (
	"errors"
	"fmt"
	"os"

	"berth.dev/berth/internal/errdefs"
)

// ReserveName claims a container name for id: symlink(2) of names/<name>
// to the ID is atomic, so two creators never both win. Reserving the same
// name for the same ID again succeeds.
func (r *Root) ReserveName(name, id string) error {
	p, err := r.NamePath(name)
	if err != nil {
		return err
	}
	if err := ValidID(id); err != nil {
		return err
	}
	if err := os.Symlink(id, p); err != nil {
		if errors.Is(err, os.ErrExist) {
			if cur, _ := os.Readlink(p); cur == id {
				return nil
			} else {
				return errdefs.Conflictf("container name %q is already in use by container %.12s; remove that container or choose another name", name, cur)
			}
		}
		return fmt.Errorf("reserve name %q: %w", name, err)
	}
	return SyncDir(r.Path + "/names")
}

// LookupName returns the ID holding name, or ErrNotFound.
func (r *Root) LookupName(name string) (string, error) {
	p, err := r.NamePath(name)
	if err != nil {
		return "", err
	}
	id, err := os.Readlink(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", errdefs.NotFoundf("no container named %q", name)
	}
	return id, err
}

// ReleaseName frees name if id holds it; releasing a free name is not an
// error, releasing another container's is ErrConflict.
func (r *Root) ReleaseName(name, id string) error {
	cur, err := r.LookupName(name)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur != id {
		return errdefs.Conflictf("container name %q belongs to container %.12s, not %.12s", name, cur, id)
	}
	p, _ := r.NamePath(name)
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("release name %q: %w", name, err)
	}
	return nil
}
