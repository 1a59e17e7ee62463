package kubeconfig

// This file is a reader for the subset of YAML that kubeconfig files use, as
// kubectl, kind, k3s, minikube and the cloud command-line tools write them.
// JSON is read by the same code, since a JSON document is a YAML flow
// collection. Whatever lies outside the subset (anchors, aliases, tags,
// complex keys, directives, several documents) is refused with its position:
// guessing could silently connect to the wrong cluster.
//
// Errors never quote the document's text: a kubeconfig holds secrets.

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	// maxYAMLSize bounds what parseYAML accepts; kubeconfigs are kilobytes.
	maxYAMLSize = 16 << 20
	// maxYAMLDepth bounds nesting, so that hostile input cannot exhaust the stack.
	maxYAMLDepth = 64
)

type nodeKind int

const (
	nullNode nodeKind = iota
	scalarNode
	mapNode
	seqNode
)

func (k nodeKind) String() string {
	switch k {
	case scalarNode:
		return "a scalar"
	case mapNode:
		return "a mapping"
	case seqNode:
		return "a sequence"
	}
	return "null"
}

// node is one YAML value with the position where it starts (1-based).
type node struct {
	kind      nodeKind
	line, col int
	str       string   // scalarNode: the value
	plain     bool     // scalarNode: unquoted, so true/false may be booleans
	keys      []string // mapNode, in document order
	vals      []*node  // mapNode
	items     []*node  // seqNode
}

// get returns the value of key in a mapping, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != mapNode {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// yamlError is a syntax error at a position in a file.
type yamlError struct {
	file      string
	line, col int
	msg       string
}

func (e *yamlError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.file, e.line, e.col, e.msg)
}

type yamlParser struct {
	file  string
	lines []string
	ln    int // current line index
	col   int // current byte offset in lines[ln] (flow and quoted scalars)
	depth int
}

// parseYAML reads one YAML (or JSON) document. An empty document is a null
// node. file is only used in error messages.
func parseYAML(file string, data []byte) (n *node, err error) {
	if len(data) > maxYAMLSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, maxYAMLSize)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%s: not UTF-8 text", file)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	p := &yamlParser{file: file, lines: strings.Split(strings.TrimSuffix(text, "\n"), "\n")}
	for i, l := range p.lines {
		if strings.ContainsAny(l, "\r\x00") {
			return nil, p.errAt(i, strings.IndexAny(l, "\r\x00"), "stray carriage return or NUL character")
		}
	}

	// Document start marker, directives.
	if i, ok := p.nextContent(0); ok {
		l := p.lines[i]
		if strings.HasPrefix(l, "%") {
			return nil, p.errAt(i, 0, "directives (%%) are not supported")
		}
		if isDocMarker(l, "---") {
			if rest := strings.TrimSpace(l[3:]); rest != "" && !strings.HasPrefix(rest, "#") {
				return nil, p.errAt(i, 4, "content on the --- line is not supported")
			}
			p.ln = i + 1
		}
	}

	i, ok := p.nextContent(p.ln)
	if !ok {
		return &node{kind: nullNode, line: 1, col: 1}, nil
	}
	p.ln = i
	n, err = p.parseBlock(indentOf(p.lines[i]))
	if err != nil {
		return nil, err
	}
	if i, ok := p.nextContent(p.ln); ok {
		l := p.lines[i]
		switch {
		case isDocMarker(l, "---"):
			return nil, p.errAt(i, 0, "several documents in one file are not supported")
		case isDocMarker(l, "..."):
			if j, ok := p.nextContent(i + 1); ok {
				return nil, p.errAt(j, indentOf(p.lines[j]), "several documents in one file are not supported")
			}
		default:
			return nil, p.errAt(i, indentOf(l), "unexpected content after the document (wrong indentation?)")
		}
	}
	return n, nil
}

func isDocMarker(l, m string) bool {
	return strings.HasPrefix(l, m) && (len(l) == 3 || l[3] == ' ' || l[3] == '\t')
}

func (p *yamlParser) errAt(line, col int, format string, args ...any) error {
	if col < 0 {
		col = 0
	}
	return &yamlError{file: p.file, line: line + 1, col: col + 1, msg: fmt.Sprintf(format, args...)}
}

// indentOf counts leading spaces.
func indentOf(l string) int {
	return len(l) - len(strings.TrimLeft(l, " "))
}

// isBlank reports whether a line holds nothing but whitespace or a comment.
func isBlank(l string) bool {
	t := strings.TrimLeft(l, " \t")
	return t == "" || t[0] == '#'
}

// nextContent returns the index of the first non-blank line at or after i.
func (p *yamlParser) nextContent(i int) (int, bool) {
	for ; i < len(p.lines); i++ {
		if !isBlank(p.lines[i]) {
			return i, true
		}
	}
	return i, false
}

func isSeqItem(content string) bool {
	return content == "-" || strings.HasPrefix(content, "- ") || strings.HasPrefix(content, "-\t")
}

// parseBlock parses the block node whose first line is p.ln, indented by
// exactly indent spaces.
func (p *yamlParser) parseBlock(indent int) (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxYAMLDepth {
		return nil, p.errAt(p.ln, indent, "nested deeper than %d levels", maxYAMLDepth)
	}
	if err := p.checkIndentTab(p.ln); err != nil {
		return nil, err
	}
	content := p.lines[p.ln][indent:]
	if isSeqItem(content) {
		return p.parseSeq(indent)
	}
	if _, _, ok, err := p.splitKey(p.ln, indent); err != nil {
		return nil, err
	} else if ok {
		return p.parseMap(indent)
	}
	// A value alone on its line(s), e.g. below "key:".
	return p.parseValue(p.ln, indent, indent-1, false)
}

// parseMap parses a block mapping whose keys are indented by indent.
func (p *yamlParser) parseMap(indent int) (*node, error) {
	m := &node{kind: mapNode, line: p.ln + 1, col: indent + 1}
	seen := map[string]bool{}
	for {
		i, ok := p.nextContent(p.ln)
		if !ok {
			return m, nil
		}
		if err := p.checkIndentTab(i); err != nil {
			return nil, err
		}
		l := p.lines[i]
		ind := indentOf(l)
		if ind < indent || isDocMarker(l, "---") || isDocMarker(l, "...") {
			return m, nil
		}
		if ind > indent {
			return nil, p.errAt(i, ind, "unexpected indentation")
		}
		if isSeqItem(l[ind:]) {
			return nil, p.errAt(i, ind, "sequence item where a mapping key was expected")
		}
		key, valCol, ok, err := p.splitKey(i, ind)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, p.errAt(i, ind, "expected a mapping key followed by a colon")
		}
		if seen[key] {
			return nil, p.errAt(i, ind, "duplicate key %q", key)
		}
		seen[key] = true
		v, err := p.parseValue(i, valCol, indent, true)
		if err != nil {
			return nil, err
		}
		m.keys = append(m.keys, key)
		m.vals = append(m.vals, v)
	}
}

// parseSeq parses a block sequence whose "-" indicators are indented by indent.
func (p *yamlParser) parseSeq(indent int) (*node, error) {
	s := &node{kind: seqNode, line: p.ln + 1, col: indent + 1}
	for {
		i, ok := p.nextContent(p.ln)
		if !ok {
			return s, nil
		}
		if err := p.checkIndentTab(i); err != nil {
			return nil, err
		}
		l := p.lines[i]
		ind := indentOf(l)
		if ind < indent || (ind == indent && !isSeqItem(l[ind:])) || isDocMarker(l, "---") || isDocMarker(l, "...") {
			return s, nil
		}
		if ind > indent {
			return nil, p.errAt(i, ind, "unexpected indentation")
		}
		// The item's content starts after "- " and any further spaces.
		c := ind + 1
		for c < len(l) && (l[c] == ' ' || l[c] == '\t') {
			c++
		}
		if c >= len(l) || l[c] == '#' {
			// "-" alone: the item is on the following lines, or null.
			v, err := p.parseValue(i, len(l), indent, false)
			if err != nil {
				return nil, err
			}
			s.items = append(s.items, v)
			continue
		}
		rest := l[c:]
		_, _, isKey, err := p.splitKey(i, c)
		if err != nil {
			return nil, err
		}
		if isSeqItem(rest) || isKey {
			if strings.Contains(l[ind:c], "\t") {
				return nil, p.errAt(i, ind+1, "tab character in indentation")
			}
			// A compact nested collection ("- name: x" or "- - x"): blank
			// out the indicator so that the item reads as a block node
			// indented by c; columns stay right.
			p.lines[i] = strings.Repeat(" ", c) + rest
			p.ln = i
			v, err := p.parseBlock(c)
			if err != nil {
				return nil, err
			}
			s.items = append(s.items, v)
			continue
		}
		v, err := p.parseValue(i, c, indent, false)
		if err != nil {
			return nil, err
		}
		s.items = append(s.items, v)
	}
}

// splitKey recognizes "key:" at line i, column col. It returns the key and
// the column where the value starts. ok is false if the line is not a
// mapping entry.
func (p *yamlParser) splitKey(i, col int) (key string, valCol int, ok bool, err error) {
	l := p.lines[i]
	content := l[col:]
	if content == "" {
		return "", 0, false, nil
	}
	switch content[0] {
	case '"', '\'':
		end, s, err := scanQuotedLine(content)
		if err != nil || end < 0 {
			return "", 0, false, nil // not a single-line quoted key; maybe a value
		}
		j := end
		for j < len(content) && content[j] == ' ' {
			j++
		}
		if j < len(content) && content[j] == ':' && (j+1 == len(content) || content[j+1] == ' ' || content[j+1] == '\t') {
			return s, col + j + 1, true, nil
		}
		return "", 0, false, nil
	case '?':
		if len(content) == 1 || content[1] == ' ' {
			return "", 0, false, p.errAt(i, col, "complex mapping keys (?) are not supported")
		}
	case '{', '[', ']', '}', ',', '&', '*', '!', '|', '>', '#':
		return "", 0, false, nil
	}
	for j := 0; j < len(content); j++ {
		switch {
		case content[j] == '#' && j > 0 && (content[j-1] == ' ' || content[j-1] == '\t'):
			return "", 0, false, nil
		case content[j] == ':' && (j+1 == len(content) || content[j+1] == ' ' || content[j+1] == '\t'):
			key := strings.TrimRight(content[:j], " \t")
			if key == "" {
				return "", 0, false, p.errAt(i, col, "missing mapping key before the colon")
			}
			return key, col + j + 1, true, nil
		}
	}
	return "", 0, false, nil
}

// scanQuotedLine scans a quoted scalar that must close on this line. It
// returns the index after the closing quote, or -1 if it does not close.
func scanQuotedLine(s string) (end int, val string, err error) {
	q := &yamlParser{file: "", lines: []string{s}}
	v, err := q.parseQuoted(0)
	if err != nil || q.ln != 0 {
		return -1, "", err
	}
	return q.col, v.str, nil
}

// parseValue parses the value that starts at line i, column col (after a
// key's colon, after "- ", or at the start of a line). parent is the
// indentation of the enclosing collection: continuation lines must be
// indented more. inMap allows a sequence indented like its key.
func (p *yamlParser) parseValue(i, col, parent int, inMap bool) (*node, error) {
	l := p.lines[i]
	for col < len(l) && (l[col] == ' ' || l[col] == '\t') {
		col++
	}
	if col >= len(l) || l[col] == '#' {
		// Nothing on this line: the value is the block below, or null.
		j, ok := p.nextContent(i + 1)
		if ok {
			jl := p.lines[j]
			ind := indentOf(jl)
			if ind > parent {
				p.ln = j
				return p.parseBlock(ind)
			}
			if inMap && ind == parent && isSeqItem(jl[ind:]) {
				p.ln = j
				return p.parseSeq(ind)
			}
		}
		p.ln = i + 1
		return &node{kind: nullNode, line: i + 1, col: col + 1}, nil
	}
	p.ln, p.col = i, col
	var n *node
	var err error
	switch c := l[col]; c {
	case '&':
		return nil, p.errAt(i, col, "anchors (&) are not supported")
	case '*':
		return nil, p.errAt(i, col, "aliases (*) are not supported")
	case '!':
		return nil, p.errAt(i, col, "tags (!) are not supported")
	case '@', '`', ']', '}', ',':
		return nil, p.errAt(i, col, "character %q cannot start a plain scalar", c)
	case '%':
		if col == 0 {
			return nil, p.errAt(i, col, "directives (%%) are not supported")
		}
	case '|', '>':
		return p.parseBlockScalar(i, col, parent)
	case '{', '[':
		n, err = p.parseFlow()
	case '"', '\'':
		n, err = p.parseQuoted(parent)
	case '-':
		if isSeqItem(l[col:]) {
			return nil, p.errAt(i, col, "a block sequence cannot start here")
		}
	}
	if n == nil && err == nil {
		return p.parsePlain(i, col, parent)
	}
	if err != nil {
		return nil, err
	}
	// Only a comment may follow a flow collection or quoted scalar.
	rest := p.lines[p.ln][p.col:]
	if t := strings.TrimLeft(rest, " \t"); t != "" && !(t[0] == '#' && len(t) < len(rest)) {
		if t[0] == ':' {
			return nil, p.errAt(p.ln, p.col+len(rest)-len(t), "mapping values are not allowed here")
		}
		return nil, p.errAt(p.ln, p.col+len(rest)-len(t), "unexpected text after value")
	}
	p.ln++
	return n, nil
}

// checkIndentTab refuses a tab right after a line's indentation spaces.
func (p *yamlParser) checkIndentTab(i int) error {
	l := p.lines[i]
	if ind := indentOf(l); ind < len(l) && l[ind] == '\t' {
		return p.errAt(i, ind, "tab character in indentation")
	}
	return nil
}
