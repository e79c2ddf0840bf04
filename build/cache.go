package build

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
)

// Cache maps a step's key to the image the step made (ROOT/build/cache.json).
// An entry whose image is gone is a miss; losing the file loses only speed,
// so writes are atomic but not fsynced.
type Cache struct {
	path string
	mu   sync.Mutex
	m    map[string]string
}

type cacheFile struct {
	Steps map[string]string `json:"steps"` // key → image ID
}

// OpenCache opens the cache file at path (created on the first Put).
func OpenCache(path string) (*Cache, error) {
	c := &Cache{path: path, m: map[string]string{}}
	var f cacheFile
	if err := state.ReadJSON(path, &f); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	for k, v := range f.Steps {
		c.m[k] = v
	}
	return c, nil
}

// Get returns the image ID cached under key.
func (c *Cache) Get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.m[key]
	return id, ok
}

// Put records key → id, merging with what other processes wrote since.
func (c *Cache) Put(ctx context.Context, key, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = id
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	l, err := state.AcquireFile(ctx, c.path+".lock", "the build cache", state.LockOptions{})
	if err != nil {
		return err
	}
	defer l.Unlock()
	var f cacheFile
	if err := state.ReadJSON(c.path, &f); err != nil && !errdefs.IsNotFound(err) {
		f.Steps = nil // a damaged cache is rebuilt
	}
	if f.Steps == nil {
		f.Steps = map[string]string{}
	}
	for k, v := range c.m {
		f.Steps[k] = v
	}
	return state.WriteJSONVolatile(c.path, f, 0o600)
}
