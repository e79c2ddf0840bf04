package dns

import (
	"sync"
	"time"
)

// aliveCache remembers Config.Alive's answers for aliveTTL: the callback
// may read state files, and a burst of queries should not repeat that.
type aliveCache struct {
	fn  func(string) bool
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]aliveResult
}

type aliveResult struct {
	alive bool
	at    time.Time
}

// maxAliveCache bounds the cache; past it the cache starts over.
const maxAliveCache = 4096

func newAliveCache(fn func(string) bool) *aliveCache {
	return &aliveCache{fn: fn, ttl: aliveTTL, now: time.Now, m: map[string]aliveResult{}}
}

// alive reports whether the container id is alive. The callback runs
// without the lock held, so a slow one does not serialise queries.
func (c *aliveCache) alive(id string) bool {
	if c.fn == nil {
		return true
	}
	now := c.now()
	c.mu.Lock()
	r, ok := c.m[id]
	c.mu.Unlock()
	if ok && now.Sub(r.at) < c.ttl && now.Sub(r.at) >= 0 {
		return r.alive
	}
	a := c.fn(id)
	c.mu.Lock()
	if len(c.m) >= maxAliveCache {
		clear(c.m)
	}
	c.m[id] = aliveResult{alive: a, at: now}
	c.mu.Unlock()
	return a
}
