package http1

import "encoding/binary"

// Character classes of RFC 9110 5.6.2 and RFC 3986, as lookup tables.
var (
	// tchar: the characters of a token.
	tchar [256]bool
	// valueChar: field-vchar (VCHAR, obs-text), SP and HTAB.
	valueChar [256]bool
	// uriChar: what a request-target may hold: visible ASCII but "#".
	uriChar [256]bool
	// hostChar: reg-name (unreserved, pct-encoded, sub-delims), and the
	// ":" and brackets of a port and an IP-literal.
	hostChar [256]bool
)

func init() {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			tchar[c], hostChar[c] = true, true
		}
		valueChar[c] = c == ' ' || c == '\t' || 0x21 <= c && c <= 0x7e || c >= 0x80
		uriChar[c] = 0x21 <= c && c <= 0x7e && c != '#'
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		tchar[c] = true
	}
	for _, c := range []byte("-._~%!$&'()*+,;=:[]") {
		hostChar[c] = true
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// isToken reports whether b is a non-empty token.
func isToken[T string | []byte](b T) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if !tchar[b[i]] {
			return false
		}
	}
	return true
}

// IsToken reports whether s is a non-empty token (RFC 9110 5.6.2): a valid
// method or field name, as the codec accepts them.
func IsToken(s string) bool { return isToken(s) }

// validValue reports whether b may be a field value: no NUL, CR, LF or other
// control byte but HTAB. Eight bytes of printable ASCII, the common case,
// are checked at once.
func validValue(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		// A byte under 0x20 or over 0x7e sets its high bit in one of the two
		// terms: then the bytes are checked one by one.
		if (x-0x20*ones)&^x&highs != 0 || ((x+(0x7f-0x7e)*ones)|x)&highs != 0 {
			for _, c := range b[:8] {
				if !valueChar[c] {
					return false
				}
			}
		}
		b = b[8:]
	}
	for _, c := range b {
		if !valueChar[c] {
			return false
		}
	}
	return true
}

// ValidOriginForm reports whether s is an origin-form request-target as
// the codec accepts one (RFC 9112 3.2.1): "/" then visible ASCII but "#".
// A request from elsewhere (HTTP/2) is held to it before it is written into
// an HTTP/1.1 request line.
func ValidOriginForm(s string) bool {
	if s == "" || s[0] != '/' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !uriChar[s[i]] {
			return false
		}
	}
	return true
}

// validAuthority reports whether b is uri-host [":" port]: reg-name or
// IPv4 characters, or an IP-literal in brackets, then digits after a colon.
func validAuthority[T string | []byte](b T) bool {
	if len(b) == 0 {
		return false
	}
	if b[0] == '[' {
		end := 0
		for i := 1; i < len(b); i++ {
			if b[i] == ']' {
				end = i
				break
			}
		}
		if end < 2 {
			return false
		}
		for i := 1; i < end; i++ {
			if c := b[i]; !(isHex(c) || c == ':' || c == '.') {
				return false
			}
		}
		b = b[end+1:]
		if len(b) > 0 && b[0] != ':' {
			return false
		}
	} else {
		colon := -1
		for i := 0; i < len(b); i++ {
			c := b[i]
			if !hostChar[c] || c == '[' || c == ']' {
				return false
			}
			if c == ':' {
				if colon >= 0 {
					return false
				}
				colon = i
			}
		}
		if colon < 0 {
			return true
		}
		if colon == 0 { // a port without a host
			return false
		}
		b = b[colon:]
	}
	if len(b) == 0 {
		return true
	}
	for i := 1; i < len(b); i++ { // the port; empty is allowed (RFC 3986 3.2.3)
		if !isDigit(b[i]) {
			return false
		}
	}
	return len(b) <= 6
}

// ValidAuthority reports whether s may be a Host field's value as the codec
// reads one: uri-host [":" port], the host not empty. What a request from
// another protocol (HTTP/2) carries as its authority must pass it to be
// forwarded in a Host field.
func ValidAuthority(s string) bool { return validAuthority(s) }

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
