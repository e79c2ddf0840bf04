package reconcile

import (
	"container/heap"
	"fmt"
	"sort"
)

// planGraph collects a plan's actions before they are numbered. Nodes are
// identified by the order they were added in; edges may point either way
// while building, and plan() orders the nodes topologically, taking the
// earliest-added ready node first, so the text follows the order the
// planner thought of the actions in wherever the edges allow.
type planGraph struct {
	nodes []*planNode
}

type planNode struct {
	a    *Action
	deps []planEdge
}

// planEdge is an Edge between nodes (by index) rather than action IDs.
type planEdge struct {
	on   int
	cond Condition
}

// add appends an action and returns its node index.
func (g *planGraph) add(a *Action, deps ...planEdge) int {
	g.nodes = append(g.nodes, &planNode{a: a, deps: deps})
	return len(g.nodes) - 1
}

// dep makes node n wait for node on.
func (g *planGraph) dep(n int, e ...planEdge) {
	g.nodes[n].deps = append(g.nodes[n].deps, e...)
}

// plan numbers the actions 1..n in a topological order and turns the
// edges into Edges on IDs, sorted and without duplicates.
func (g *planGraph) plan() (*Plan, error) {
	n := len(g.nodes)
	waiting := make([]int, n) // unmet dependencies per node
	dependents := make([][]int, n)
	for i, nd := range g.nodes {
		seen := map[int]bool{}
		for _, e := range nd.deps {
			if e.on == i {
				return nil, fmt.Errorf("compute: action %s %s waits for itself", nd.a.Kind, nd.a.Resource)
			}
			if !seen[e.on] {
				seen[e.on] = true
				waiting[i]++
				dependents[e.on] = append(dependents[e.on], i)
			}
		}
	}
	ready := &nodeHeap{}
	for i := range g.nodes {
		if waiting[i] == 0 {
			heap.Push(ready, i)
		}
	}
	id := make([]int, n)
	p := &Plan{Actions: make([]*Action, 0, n)}
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		a := g.nodes[i].a
		a.ID = len(p.Actions) + 1
		id[i] = a.ID
		p.Actions = append(p.Actions, a)
		for _, d := range dependents[i] {
			if waiting[d]--; waiting[d] == 0 {
				heap.Push(ready, d)
			}
		}
	}
	if len(p.Actions) != n {
		for i, nd := range g.nodes {
			if waiting[i] > 0 {
				return nil, fmt.Errorf("compute: the plan has a cycle through %s %s", nd.a.Kind, nd.a.Resource)
			}
		}
	}
	for _, nd := range g.nodes {
		a := nd.a
		a.Deps = nil
		seen := map[Edge]bool{}
		for _, e := range nd.deps {
			ed := Edge{On: id[e.on], Cond: e.cond}
			if !seen[ed] {
				seen[ed] = true
				a.Deps = append(a.Deps, ed)
			}
		}
		sort.Slice(a.Deps, func(x, y int) bool {
			if a.Deps[x].On != a.Deps[y].On {
				return a.Deps[x].On < a.Deps[y].On
			}
			return a.Deps[x].Cond < a.Deps[y].Cond
		})
		sort.Slice(a.Needs, func(x, y int) bool {
			if a.Needs[x].Service != a.Needs[y].Service {
				return a.Needs[x].Service < a.Needs[y].Service
			}
			return a.Needs[x].Cond < a.Needs[y].Cond
		})
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("compute: %w", err)
	}
	return p, nil
}

type nodeHeap []int

func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h nodeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *nodeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
