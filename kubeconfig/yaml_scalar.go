package kubeconfig

// Scalars: plain, quoted and block scalars of the YAML reader.

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// parsePlain parses a plain (unquoted) scalar in block context, which may
// continue on following lines indented more than parent.
func (p *yamlParser) parsePlain(i, col, parent int) (*node, error) {
	first, err := p.plainLine(i, col)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(first)
	breaks := 0
	j := i + 1
	for ; j < len(p.lines); j++ {
		l := p.lines[j]
		t := strings.TrimLeft(l, " \t")
		if t == "" {
			breaks++
			continue
		}
		if indentOf(l) <= parent || t[0] == '#' {
			break
		}
		if isDocMarker(l, "---") || isDocMarker(l, "...") {
			break
		}
		more, err := p.plainLine(j, len(l)-len(t))
		if err != nil {
			return nil, err
		}
		if breaks == 0 {
			b.WriteByte(' ')
		}
		for ; breaks > 0; breaks-- {
			b.WriteByte('\n')
		}
		b.WriteString(more)
	}
	p.ln = j
	return plainNode(b.String(), i+1, col+1), nil
}

// plainLine returns one line's part of a plain scalar, without a comment.
func (p *yamlParser) plainLine(i, col int) (string, error) {
	l := p.lines[i]
	s := l[col:]
	for j := 0; j < len(s); j++ {
		switch {
		case s[j] == '#' && j > 0 && (s[j-1] == ' ' || s[j-1] == '\t'):
			return strings.TrimRight(s[:j], " \t"), nil
		case s[j] == ':' && (j+1 == len(s) || s[j+1] == ' ' || s[j+1] == '\t'):
			return "", p.errAt(i, col+j, "mapping values are not allowed here")
		}
	}
	return strings.TrimRight(s, " \t"), nil
}

// parseBlockScalar parses a literal (|) or folded (>) block scalar whose
// header is at line i, column col.
func (p *yamlParser) parseBlockScalar(i, col, parent int) (*node, error) {
	l := p.lines[i]
	n := &node{kind: scalarNode, line: i + 1, col: col + 1}
	folded := l[col] == '>'
	chomp := byte(0)
	explicit := 0
	h := col + 1
	for ; h < len(l) && h < col+3; h++ {
		c := l[h]
		switch {
		case (c == '-' || c == '+') && chomp == 0:
			chomp = c
		case c >= '1' && c <= '9' && explicit == 0:
			explicit = int(c - '0')
		default:
			goto done
		}
	}
done:
	if t := strings.TrimLeft(l[h:], " \t"); t != "" && !(t[0] == '#' && len(t) < len(l[h:])) {
		return nil, p.errAt(i, h, "invalid block scalar header")
	}
	indent := -1
	if explicit > 0 {
		indent = max(parent, 0) + explicit
	}
	var lines []string
	j := i + 1
	for ; j < len(p.lines); j++ {
		bl := p.lines[j]
		if strings.TrimLeft(bl, " ") == "" {
			lines = append(lines, "")
			continue
		}
		ind := indentOf(bl)
		if indent < 0 {
			if ind <= parent {
				break
			}
			indent = ind
		}
		if ind < indent {
			if ind > parent && strings.TrimLeft(bl, " ")[0] != '#' {
				return nil, p.errAt(j, ind, "block scalar line indented less than its first line")
			}
			break
		}
		lines = append(lines, bl[indent:])
	}
	p.ln = j
	// Trailing empty lines belong to chomping, not content.
	end := len(lines)
	for end > 0 && lines[end-1] == "" {
		end--
	}
	trailing := len(lines) - end
	body := lines[:end]
	var b strings.Builder
	if !folded {
		for k, s := range body {
			if k > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(s)
		}
	} else {
		// Folding: the break between two lines that are not more-indented
		// becomes a space; each empty line between them a newline.
		// Around more-indented lines, breaks are kept.
		k := 0
		for ; k < len(body) && body[k] == ""; k++ {
			b.WriteByte('\n')
		}
		prev, empties := "", 0
		for first := true; k < len(body); k++ {
			s := body[k]
			if s == "" {
				empties++
				continue
			}
			if !first {
				switch {
				case !moreIndented(prev) && !moreIndented(s) && empties == 0:
					b.WriteByte(' ')
				case !moreIndented(prev) && !moreIndented(s):
					b.WriteString(strings.Repeat("\n", empties))
				default:
					b.WriteString(strings.Repeat("\n", empties+1))
				}
			}
			b.WriteString(s)
			prev, empties, first = s, 0, false
		}
	}
	switch {
	case len(body) == 0:
		if chomp == '+' {
			b.WriteString(strings.Repeat("\n", trailing))
		}
	case chomp == '-':
	case chomp == '+':
		b.WriteString(strings.Repeat("\n", trailing+1))
	default:
		b.WriteByte('\n')
	}
	n.str = b.String()
	return n, nil
}

// parseQuoted parses a single- or double-quoted scalar at the cursor, which
// may span lines (line breaks fold to spaces). parent is the enclosing block
// indentation; continuation lines must be indented more (-1 in flow context).
func (p *yamlParser) parseQuoted(parent int) (*node, error) {
	q := p.peek()
	n := &node{kind: scalarNode, line: p.ln + 1, col: p.col + 1}
	p.next()
	var b strings.Builder
	// White space before a line break is dropped, so it is held back
	// (from column ws of the current line) until something else follows.
	ws := -1
	flush := func() {
		if ws >= 0 {
			b.WriteString(p.lines[p.ln][ws:p.col])
			ws = -1
		}
	}
	for {
		c := p.peek()
		switch {
		case c == 0:
			return nil, p.errAt(n.line-1, n.col-1, "quoted scalar is not closed")
		case c == ' ' || c == '\t':
			if ws < 0 {
				ws = p.col
			}
			p.next()
		case c == '\n':
			ws = -1
			if err := p.foldBreaks(&b, parent, n); err != nil {
				return nil, err
			}
		case c == q && q == '\'':
			flush()
			p.next()
			if p.peek() == '\'' {
				b.WriteByte('\'')
				p.next()
				continue
			}
			n.str = b.String()
			return n, nil
		case c == q:
			flush()
			p.next()
			n.str = b.String()
			return n, nil
		case c == '\\' && q == '"':
			flush()
			p.next()
			if err := p.escape(&b, parent, n); err != nil {
				return nil, err
			}
		default:
			flush()
			b.WriteByte(c)
			p.next()
		}
	}
}

// foldBreaks handles the line break at the cursor inside a quoted scalar.
func (p *yamlParser) foldBreaks(b *strings.Builder, parent int, n *node) error {
	empty := 0
	for {
		p.next() // the break
		if p.ln >= len(p.lines) {
			return p.errAt(n.line-1, n.col-1, "quoted scalar is not closed")
		}
		l := p.lines[p.ln]
		t := strings.TrimLeft(l, " \t")
		if t == "" && p.ln < len(p.lines)-1 {
			empty++
			p.col = len(l)
			continue
		}
		if parent >= 0 && indentOf(l) <= parent && t != "" {
			return p.errAt(p.ln, indentOf(l), "quoted scalar continues at or left of its parent's indentation")
		}
		if isDocMarker(l, "---") || isDocMarker(l, "...") {
			return p.errAt(p.ln, 0, "document marker inside a quoted scalar")
		}
		p.col = len(l) - len(t)
		break
	}
	if empty == 0 {
		b.WriteByte(' ')
	}
	for ; empty > 0; empty-- {
		b.WriteByte('\n')
	}
	return nil
}

var simpleEscapes = map[byte]string{
	'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n", 'v': "\v",
	'f': "\f", 'r': "\r", 'e': "\x1b", ' ': " ", '"': "\"", '/': "/", '\\': "\\",
	'N': "\u0085", '_': "\u00a0", 'L': "\u2028", 'P': "\u2029",
}

// escape handles the escape sequence after a backslash in a double-quoted scalar.
func (p *yamlParser) escape(b *strings.Builder, parent int, n *node) error {
	c := p.peek()
	if c == '\n' {
		// An escaped line break joins lines without a space.
		for {
			p.next()
			if p.ln >= len(p.lines) {
				return p.errAt(n.line-1, n.col-1, "quoted scalar is not closed")
			}
			l := p.lines[p.ln]
			t := strings.TrimLeft(l, " \t")
			if t == "" && p.ln < len(p.lines)-1 {
				b.WriteByte('\n')
				p.col = len(l)
				continue
			}
			p.col = len(l) - len(t)
			return nil
		}
	}
	if s, ok := simpleEscapes[c]; ok {
		b.WriteString(s)
		p.next()
		return nil
	}
	width := 0
	switch c {
	case 'x':
		width = 2
	case 'u':
		width = 4
	case 'U':
		width = 8
	default:
		return p.errAt(p.ln, p.col-1, "invalid escape sequence in double-quoted scalar")
	}
	l := p.lines[p.ln]
	if p.col+1+width > len(l) {
		return p.errAt(p.ln, p.col-1, "short escape sequence in double-quoted scalar")
	}
	v, err := strconv.ParseUint(l[p.col+1:p.col+1+width], 16, 32)
	if err != nil || v > utf8.MaxRune || (v >= 0xdc00 && v <= 0xdfff) || (v >= 0xd800 && c == 'U' && v < 0xe000) {
		return p.errAt(p.ln, p.col-1, "invalid escape sequence in double-quoted scalar")
	}
	p.col += 1 + width
	if v >= 0xd800 && v < 0xdc00 && c == 'u' {
		// A JSON-style surrogate pair.
		if p.col+6 <= len(l) && l[p.col] == '\\' && l[p.col+1] == 'u' {
			lo, err := strconv.ParseUint(l[p.col+2:p.col+6], 16, 32)
			if err == nil && lo >= 0xdc00 && lo <= 0xdfff {
				b.WriteRune(rune((v-0xd800)<<10 + (lo - 0xdc00) + 0x10000))
				p.col += 6
				return nil
			}
		}
		return p.errAt(p.ln, p.col-1-width, "invalid escape sequence in double-quoted scalar")
	}
	b.WriteRune(rune(v))
	return nil
}

// moreIndented reports whether a folded block scalar line starts with white space.
func moreIndented(s string) bool {
	return s != "" && (s[0] == ' ' || s[0] == '\t')
}

// plainNode makes the node for a plain scalar, resolving the null forms.
func plainNode(s string, line, col int) *node {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return &node{kind: nullNode, line: line, col: col}
	}
	return &node{kind: scalarNode, plain: true, str: s, line: line, col: col}
}
