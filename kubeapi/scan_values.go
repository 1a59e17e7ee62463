package kubeapi

import (
	"io"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The scalar values of the decoder: strings, numbers, booleans and null.

// literal consumes the literal word (true, false or null), whose first
// byte is next.
func (d *decoder) literal(word string) {
	if !d.ensure(len(word)) {
		for i := 1; d.pos+i < d.end; i++ {
			if d.buf[d.pos+i] != word[i] {
				d.pos += i
				d.fail("invalid character %s in literal %s (expecting '%c')", quoteChar(d.buf[d.pos]), word, word[i])
				return
			}
		}
		d.failRead()
		return
	}
	for i := 1; i < len(word); i++ {
		if d.buf[d.pos+i] != word[i] {
			d.pos += i
			d.fail("invalid character %s in literal %s (expecting '%c')", quoteChar(d.buf[d.pos]), word, word[i])
			return
		}
	}
	d.pos += len(word)
}

// String flags.
const (
	strEscaped  = 1 << iota // holds a backslash
	strNonASCII             // holds bytes >= 0x80
)

// strClass marks the bytes a string scan must look at.
var strClass = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case c < 0x20:
			t[c] = 1
		case c == '"', c == '\\':
			t[c] = 1
		case c >= 0x80:
			t[c] = 1
		}
	}
	return t
}()

// scanString scans the string token at pos (buf[pos] is '"') and returns
// it, quotes included, unconsumed. With keep false the bytes before the
// current one may be dropped from the buffer as the scan goes: the
// returned token is then only the end of the string.
func (d *decoder) scanString(keep bool) (raw []byte, flags int) {
	i := 1
	for {
		buf := d.buf[d.pos:d.end]
		for i < len(buf) {
			c := buf[i]
			if strClass[c] == 0 {
				i++
				continue
			}
			switch {
			case c == '"':
				return buf[:i+1], flags
			case c == '\\':
				if i+1 >= len(buf) {
					goto more
				}
				switch buf[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
				case 'u':
					if i+6 > len(buf) {
						goto more
					}
					for j := i + 2; j < i+6; j++ {
						if !isHex(buf[j]) {
							d.pos += j
							d.fail("invalid character %s in \\u hexadecimal character escape", quoteChar(buf[j]))
							return nil, 0
						}
					}
					i += 6
				default:
					d.pos += i + 1
					d.fail("invalid character %s in string escape code", quoteChar(buf[i+1]))
					return nil, 0
				}
				flags |= strEscaped
			case c < 0x20:
				d.pos += i
				d.fail("invalid character %s in string literal", quoteChar(c))
				return nil, 0
			default:
				flags |= strNonASCII
				i++
			}
		}
	more:
		if !keep && i > 1 {
			// Keep the opening quote's place: move to the current byte.
			d.pos += i - 1
			i = 1
		}
		if !d.fill() {
			d.pos += i
			d.failRead()
			return nil, 0
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unquote returns the content of the string token raw, unescaped as
// encoding/json does. The result is valid until the next read.
func (d *decoder) unquote(raw []byte, flags int) []byte {
	s := raw[1 : len(raw)-1]
	if flags == 0 || flags == strNonASCII && utf8.Valid(s) {
		return s
	}
	b := d.scratch[:0]
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch s[r+1] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, getu4(s[r+2:])); dec != unicode.ReplacementChar {
							r += 6
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	d.scratch = b
	return b
}

// getu4 decodes the 4 hexadecimal digits at the start of s (checked by
// scanString).
func getu4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r*16 + rune(c)
	}
	return r
}

// str reads a string value and returns its content, valid until the next
// read. ok is false for null and on errors; any other value is an error.
func (d *decoder) str() (s []byte, ok bool) {
	c, ok := d.next()
	if !ok {
		return nil, false
	}
	switch c {
	case '"':
		raw, flags := d.scanString(true)
		if d.err != nil {
			return nil, false
		}
		s = d.unquote(raw, flags)
		d.pos += len(raw)
		return s, true
	case 'n':
		d.literal("null")
		return nil, false
	}
	d.wrongType(c, "a string")
	return nil, false
}

// rawString reads a string value and returns its token, quotes and
// escapes included; like str otherwise.
func (d *decoder) rawString() (raw []byte, ok bool) {
	c, ok := d.next()
	if !ok {
		return nil, false
	}
	switch c {
	case '"':
		raw, _ = d.scanString(true)
		if d.err != nil {
			return nil, false
		}
		d.pos += len(raw)
		return raw, true
	case 'n':
		d.literal("null")
		return nil, false
	}
	d.wrongType(c, "a string")
	return nil, false
}

// skipStringValue skips a string or null, failing on any other value.
func (d *decoder) skipStringValue() {
	c, ok := d.next()
	if !ok {
		return
	}
	switch c {
	case '"':
		raw, _ := d.scanString(false)
		d.pos += len(raw)
	case 'n':
		d.literal("null")
	default:
		d.wrongType(c, "a string")
	}
}

// scanNumber scans the number token at pos and returns it, unconsumed.
func (d *decoder) scanNumber() []byte {
	const (
		start = iota
		sign  // after '-'
		zero  // after a leading 0
		intg  // in the integer part
		dot   // after '.'
		frac  // in the fraction
		exp   // after 'e'
		expSign
		expDigits
	)
	state := start
	i := 0
	for {
		buf := d.buf[d.pos:d.end]
		for ; i < len(buf); i++ {
			c := buf[i]
			digit := '0' <= c && c <= '9'
			switch state {
			case start:
				switch {
				case c == '-':
					state = sign
				case c == '0':
					state = zero
				default: // 1-9: checked by the caller
					state = intg
				}
				continue
			case sign:
				switch {
				case c == '0':
					state = zero
					continue
				case digit:
					state = intg
					continue
				}
				d.pos += i
				d.fail("invalid character %s in numeric literal", quoteChar(c))
				return nil
			case zero, intg:
				switch {
				case digit && state == intg:
					continue
				case c == '.':
					state = dot
					continue
				case c == 'e' || c == 'E':
					state = exp
					continue
				}
				return buf[:i]
			case dot, frac:
				switch {
				case digit:
					state = frac
					continue
				case state == frac && (c == 'e' || c == 'E'):
					state = exp
					continue
				case state == frac:
					return buf[:i]
				}
				d.pos += i
				d.fail("invalid character %s after decimal point in numeric literal", quoteChar(c))
				return nil
			case exp, expSign:
				switch {
				case digit:
					state = expDigits
					continue
				case state == exp && (c == '+' || c == '-'):
					state = expSign
					continue
				}
				d.pos += i
				d.fail("invalid character %s in exponent of numeric literal", quoteChar(c))
				return nil
			case expDigits:
				if digit {
					continue
				}
				return buf[:i]
			}
		}
		if !d.fill() {
			if d.rerr == io.EOF {
				switch state {
				case zero, intg, frac, expDigits:
					return d.buf[d.pos:d.end]
				}
			}
			d.pos = d.end
			d.failRead()
			return nil
		}
	}
}

// int32 reads an integer into *dst; null leaves it unchanged. A fraction,
// an exponent or a value out of range is an error, as in encoding/json.
func (d *decoder) int32(dst *int32) {
	if n, ok := d.int32Value(); ok {
		*dst = n
	}
}

func (d *decoder) int32Value() (int32, bool) {
	c, ok := d.next()
	if !ok {
		return 0, false
	}
	switch {
	case c == '-' || '0' <= c && c <= '9':
		tok := d.scanNumber()
		if d.err != nil {
			return 0, false
		}
		n, ok := parseInt32(tok)
		if !ok {
			d.fail("number %s is not a 32-bit integer", tok)
			return 0, false
		}
		d.pos += len(tok)
		return n, true
	case c == 'n':
		d.literal("null")
		return 0, false
	}
	d.wrongType(c, "a number")
	return 0, false
}

// parseInt32 parses a valid JSON number that must be an int32.
func parseInt32(tok []byte) (int32, bool) {
	neg := tok[0] == '-'
	if neg {
		tok = tok[1:]
	}
	if len(tok) > 10 {
		return 0, false
	}
	var n int64
	for _, c := range tok {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	if n != int64(int32(n)) {
		return 0, false
	}
	return int32(n), true
}

// boolValue reads true or false; ok is false for null and on errors.
func (d *decoder) boolValue() (v, ok bool) {
	c, ok := d.next()
	if !ok {
		return false, false
	}
	switch c {
	case 't':
		d.literal("true")
		return true, d.err == nil
	case 'f':
		d.literal("false")
		return false, d.err == nil
	case 'n':
		d.literal("null")
		return false, false
	}
	d.wrongType(c, "a boolean")
	return false, false
}

// isNull consumes null when it is the next value.
func (d *decoder) isNull() bool {
	c, ok := d.next()
	if ok && c == 'n' {
		d.literal("null")
		return true
	}
	return false
}
