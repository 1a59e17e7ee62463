package kubeconfig

// Flow collections ({...} and [...], and so JSON) of the YAML reader.

import "strings"

// peek returns the byte at the cursor, '\n' at the end of a line, or 0 at
// the end of the input.
func (p *yamlParser) peek() byte {
	if p.ln >= len(p.lines) {
		return 0
	}
	l := p.lines[p.ln]
	if p.col >= len(l) {
		if p.ln == len(p.lines)-1 {
			return 0
		}
		return '\n'
	}
	return l[p.col]
}

// next moves the cursor past one byte or line break.
func (p *yamlParser) next() {
	if p.col >= len(p.lines[p.ln]) {
		p.ln++
		p.col = 0
		return
	}
	p.col++
}

// skipFlowSpace skips spaces, line breaks and comments inside a flow collection.
func (p *yamlParser) skipFlowSpace() {
	for {
		switch c := p.peek(); c {
		case ' ', '\t', '\n':
			p.next()
		case '#':
			if p.col == 0 || p.lines[p.ln][p.col-1] == ' ' || p.lines[p.ln][p.col-1] == '\t' {
				p.col = len(p.lines[p.ln])
				continue
			}
			return
		default:
			return
		}
	}
}

// parseFlow parses a flow collection ({...} or [...]), which may span lines
// (JSON documents are one).
func (p *yamlParser) parseFlow() (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxYAMLDepth {
		return nil, p.errAt(p.ln, p.col, "nested deeper than %d levels", maxYAMLDepth)
	}
	open := p.peek()
	n := &node{kind: seqNode, line: p.ln + 1, col: p.col + 1}
	closer := byte(']')
	if open == '{' {
		n.kind, closer = mapNode, '}'
	}
	p.next()
	seen := map[string]bool{}
	for {
		p.skipFlowSpace()
		if p.peek() == closer {
			p.next()
			return n, nil
		}
		if n.kind == mapNode {
			kl, kc := p.ln, p.col
			k, err := p.parseFlowScalar(true)
			if err != nil {
				return nil, err
			}
			if k.kind != scalarNode && k.kind != nullNode {
				return nil, p.errAt(kl, kc, "mapping keys must be scalars")
			}
			if seen[k.str] {
				return nil, p.errAt(kl, kc, "duplicate key %q", k.str)
			}
			seen[k.str] = true
			p.skipFlowSpace()
			v := &node{kind: nullNode, line: p.ln + 1, col: p.col + 1}
			if p.peek() == ':' {
				p.next()
				p.skipFlowSpace()
				if c := p.peek(); c != ',' && c != '}' {
					if v, err = p.parseFlowValue(); err != nil {
						return nil, err
					}
				}
			}
			n.keys = append(n.keys, k.str)
			n.vals = append(n.vals, v)
		} else {
			v, err := p.parseFlowValue()
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		p.skipFlowSpace()
		switch p.peek() {
		case ',':
			p.next()
		case closer:
		case 0:
			return nil, p.errAt(n.line-1, n.col-1, "flow collection is not closed")
		default:
			return nil, p.errAt(p.ln, p.col, "expected , or %c in flow collection", closer)
		}
	}
}

func (p *yamlParser) parseFlowValue() (*node, error) {
	switch p.peek() {
	case '{', '[':
		return p.parseFlow()
	}
	return p.parseFlowScalar(false)
}

// parseFlowScalar parses a quoted or plain scalar inside a flow collection.
func (p *yamlParser) parseFlowScalar(isKey bool) (*node, error) {
	switch c := p.peek(); c {
	case '"', '\'':
		return p.parseQuoted(-1)
	case '&':
		return nil, p.errAt(p.ln, p.col, "anchors (&) are not supported")
	case '*':
		return nil, p.errAt(p.ln, p.col, "aliases (*) are not supported")
	case '!':
		return nil, p.errAt(p.ln, p.col, "tags (!) are not supported")
	case '?':
		return nil, p.errAt(p.ln, p.col, "complex mapping keys (?) are not supported")
	case '{', '[':
		if isKey {
			return nil, p.errAt(p.ln, p.col, "mapping keys must be scalars")
		}
	case '@', '`', '|', '>', '%', '#':
		return nil, p.errAt(p.ln, p.col, "character %q cannot start a plain scalar", c)
	case 0, '\n':
		return nil, p.errAt(p.ln, p.col, "flow collection is not closed")
	}
	if l := p.lines[p.ln]; l[p.col] == '-' && (p.col+1 == len(l) || l[p.col+1] == ' ' || l[p.col+1] == '\t') {
		return nil, p.errAt(p.ln, p.col, "a block sequence cannot start inside a flow collection")
	}
	// A plain scalar ends at a flow indicator, ": ", " #" or the line's end.
	l := p.lines[p.ln]
	line, col := p.ln+1, p.col+1
	j := p.col
	for ; j < len(l); j++ {
		c := l[j]
		if c == ',' || c == '[' || c == ']' || c == '{' || c == '}' {
			break
		}
		if c == ':' && (j+1 == len(l) || strings.IndexByte(" \t,[]{}", l[j+1]) >= 0) {
			break
		}
		if c == '#' && (l[j-1] == ' ' || l[j-1] == '\t') {
			break
		}
	}
	str := strings.TrimRight(l[p.col:j], " \t")
	p.col = j
	if str == "" {
		return nil, p.errAt(p.ln, p.col, "expected a value in flow collection")
	}
	return plainNode(str, line, col), nil
}
