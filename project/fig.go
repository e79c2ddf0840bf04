package project

import (
	"bytes"
	"strings"

	yaml "go.yaml.in/yaml/v4"
)

// composeTopLevel lists the keys a compose-spec file may have at its top
// level. A file whose keys are all among them is not a fig v1 file.
var composeTopLevel = map[string]bool{
	"version": true, "name": true, "services": true, "networks": true, "volumes": true,
	"secrets": true, "configs": true, "include": true, "models": true,
}

// isFigDoc reports whether a top-level mapping is a fig v1 / compose v1
// file: services at the top level, no services: key, no version 2 or 3.
func isFigDoc(root *yaml.Node) bool {
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	if k, _ := mapGet(root, "services"); k != nil {
		return false
	}
	if _, v := mapGet(root, "version"); v != nil {
		v = resolveAlias(v)
		if v.Kind == yaml.ScalarNode && !strings.HasPrefix(v.Value, "1") {
			return false // "2", "2.4", "3.8", …: compose formats with services:
		}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key := root.Content[i].Value
		if !composeTopLevel[key] && !strings.HasPrefix(key, "x-") {
			return true
		}
	}
	return false
}

// FigPrepass converts a fig v1 file (services at the top level) into the
// compose-spec form compose-go loads. A file that is not fig v1 is returned
// unchanged (converted=false). The conversion is idempotent: its output is
// a compose-spec file.
//
//   - services are wrapped under services:
//   - net: host|none|container:NAME becomes network_mode; net: bridge is the
//     project's default network and is dropped
//   - volumes_from entries that name no service of the file become
//     container:NAME (fig let them name any container)
//   - dockerfile: next to build: becomes build: {context, dockerfile}
//   - log_driver / log_opt become logging: {driver, options}
//   - every other key (links, external_links, dns, …) is kept as it is
func FigPrepass(file string, content []byte) (out []byte, converted bool, err error) {
	d, err := parseDoc(file, content)
	if err != nil {
		return nil, false, err
	}
	if !isFigDoc(d.root) {
		return content, false, nil
	}
	root, err := figConvert(file, d.root)
	if err != nil {
		return nil, false, err
	}
	out, err = encodeNode(file, root)
	return out, err == nil, err
}

// encodeNode renders a converted tree as YAML for compose-go.
func encodeNode(file string, root *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, &Error{File: file, Msg: "cannot convert fig file: " + err.Error(), Err: err}
	}
	if err := enc.Close(); err != nil {
		return nil, &Error{File: file, Msg: "cannot convert fig file: " + err.Error(), Err: err}
	}
	return buf.Bytes(), nil
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

// scalarAt is a new scalar standing where the user wrote at, so positions
// of renamed keys (net → network_mode) point at the original.
func scalarAt(v string, at *yaml.Node) *yaml.Node {
	n := scalar(v)
	n.Line, n.Column = at.Line, at.Column
	return n
}

func figConvert(file string, root *yaml.Node) (*yaml.Node, error) {
	services := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	names := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		names[root.Content[i].Value] = true
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case k.Value == "version":
			continue // "1": nothing to carry over
		case strings.HasPrefix(k.Value, "x-"):
			out.Content = append(out.Content, k, v)
			continue
		}
		pos := Pos{file, k.Line, k.Column}
		if k.Kind != yaml.ScalarNode {
			return nil, errorf(pos, "", "write each service name as a plain string key", "a fig service name must be a string")
		}
		sv := resolveAlias(v)
		if sv.Kind == yaml.ScalarNode && sv.Tag == "!!null" {
			return nil, errorf(pos, k.Value, "give it at least 'image:' or 'build:'", "fig service %q is empty", k.Value)
		}
		if sv.Kind != yaml.MappingNode {
			return nil, errorf(pos, k.Value, "each top-level key of a fig file is a service and holds a mapping such as 'image: busybox'",
				"fig service %q is not a mapping", k.Value)
		}
		conv, err := figService(file, k.Value, sv, names)
		if err != nil {
			return nil, err
		}
		services.Content = append(services.Content, k, conv)
	}
	out.Content = append([]*yaml.Node{scalar("services"), services}, out.Content...)
	return out, nil
}

func figService(file, name string, svc *yaml.Node, names map[string]bool) (*yaml.Node, error) {
	// Keep the anchor: aliases elsewhere in the file may name this service's
	// mapping, and must find the converted one.
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: svc.Line, Column: svc.Column, Anchor: svc.Anchor}
	var logging *yaml.Node
	var dockerfile *yaml.Node
	buildIdx := -1
	for i := 0; i+1 < len(svc.Content); i += 2 {
		k, v := svc.Content[i], svc.Content[i+1]
		pos := Pos{file, k.Line, k.Column}
		field := name + "." + k.Value
		switch k.Value {
		case "net":
			if nk, _ := mapGet(svc, "network_mode"); nk != nil {
				return nil, errorf(pos, field, "keep one of them", "'net' and 'network_mode' are both set")
			}
			rv := resolveAlias(v)
			if rv.Kind != yaml.ScalarNode {
				return nil, errorf(pos, field, `write host, none, bridge or "container:NAME"`, "net must be a string")
			}
			switch mode := rv.Value; {
			case mode == "bridge" || mode == "":
				continue // the project's default network
			case mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:") || strings.HasPrefix(mode, "service:"):
				out.Content = append(out.Content, scalarAt("network_mode", k), scalarAt(mode, rv))
			default:
				return nil, errorf(pos, field, `write host, none, bridge or "container:NAME"`, "%q is not a fig network mode", mode)
			}
			continue
		case "volumes_from":
			rv := resolveAlias(v)
			if rv.Kind == yaml.SequenceNode {
				seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: rv.Style}
				for _, item := range rv.Content {
					item = resolveAlias(item)
					if item.Kind == yaml.ScalarNode {
						item = scalarAt(figVolumesFrom(item.Value, names), item)
					}
					seq.Content = append(seq.Content, item)
				}
				v = seq
			}
		case "dockerfile":
			dockerfile = v
			continue
		case "log_driver":
			if logging == nil {
				logging = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			logging.Content = append(logging.Content, scalarAt("driver", k), v)
			continue
		case "log_opt":
			if logging == nil {
				logging = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			logging.Content = append(logging.Content, scalarAt("options", k), v)
			continue
		case "build":
			buildIdx = len(out.Content)
		}
		out.Content = append(out.Content, k, v)
	}
	if dockerfile != nil {
		if buildIdx < 0 {
			k, _ := mapGet(svc, "dockerfile")
			return nil, errorf(Pos{file, k.Line, k.Column}, name+".dockerfile", "add 'build: .' (the directory holding the Dockerfile)",
				"'dockerfile' is set without 'build'")
		}
		ctx := resolveAlias(out.Content[buildIdx+1])
		if ctx.Kind == yaml.ScalarNode {
			b := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			dk, _ := mapGet(svc, "dockerfile")
			b.Content = append(b.Content, scalarAt("context", ctx), ctx, scalarAt("dockerfile", dk), dockerfile)
			out.Content[buildIdx+1] = b
		}
	}
	if logging != nil {
		k := logging.Content[0]
		out.Content = append(out.Content, scalarAt("logging", k), logging)
	}
	return out, nil
}

// figVolumesFrom rewrites a fig volumes_from entry: a name that is not a
// service of the file is a container name.
func figVolumesFrom(entry string, services map[string]bool) string {
	if strings.HasPrefix(entry, "container:") || strings.HasPrefix(entry, "service:") {
		return entry
	}
	name, mode, _ := strings.Cut(entry, ":")
	if services[name] {
		return entry
	}
	if mode != "" {
		return "container:" + name + ":" + mode
	}
	return "container:" + name
}
