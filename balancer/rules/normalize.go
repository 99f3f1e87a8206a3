package rules

// Rules see a request's path and host the way the application behind is
// likely to read them, so that a deny rule on /admin* also denies /%61dmin,
// //admin and /x/../admin, which most servers resolve to /admin. The request
// is forwarded as the client sent it; only the matching sees the normal form.

// NormalizePath returns path in the normal form rules match: unreserved
// characters percent-decoded (RFC 3986 2.3), runs of "/" merged, and "." and
// ".." segments removed (RFC 3986 5.2.4). A path already in normal form is
// returned as it is, without a copy; else the normal form is built in dst.
func NormalizePath(dst []byte, path string) ([]byte, bool) {
	if isNormalPath(path) {
		return nil, false
	}
	dst = dst[:0]
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' && i+2 < len(path) {
			if d, ok := unhexPair(path[i+1], path[i+2]); ok && unreserved(d) {
				c = d
				i += 2
			}
		}
		dst = append(dst, c)
	}
	return removeDotSegments(dst), true
}

// isNormalPath reports whether path has nothing NormalizePath would change:
// no "%", no "//", no "." segment.
func isNormalPath(path string) bool {
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '%':
			return false
		case '/':
			if i+1 < len(path) && (path[i+1] == '/' || path[i+1] == '.' && dotSegmentAt(path, i+1)) {
				return false
			}
		}
	}
	return true
}

// dotSegmentAt reports whether a "." or ".." segment starts at path[i].
func dotSegmentAt(path string, i int) bool {
	end := i
	for end < len(path) && path[end] != '/' {
		end++
	}
	seg := path[i:end]
	return seg == "." || seg == ".."
}

// removeDotSegments resolves "." and ".." segments and merges "//" in place.
func removeDotSegments(b []byte) []byte {
	out := b[:0]
	for i := 0; i < len(b); {
		if b[i] != '/' {
			// A relative path: rules match origin-form paths only, which start with "/".
			out = append(out, b[i])
			i++
			continue
		}
		end := i + 1
		for end < len(b) && b[end] != '/' {
			end++
		}
		seg := b[i+1 : end]
		last := end == len(b)
		switch string(seg) {
		case "":
			if last {
				out = append(out, '/')
			}
		case ".":
			if last {
				out = append(out, '/')
			}
		case "..":
			for len(out) > 0 && out[len(out)-1] != '/' {
				out = out[:len(out)-1]
			}
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, '/')
			}
		default:
			out = append(out, '/')
			out = append(out, seg...)
		}
		i = end
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return out
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhexPair(a, b byte) (byte, bool) {
	x, ok1 := unhex(a)
	y, ok2 := unhex(b)
	return x<<4 | y, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// NormalizeHost drops the one trailing dot of a fully qualified host name:
// "app.example." is the same host as "app.example" to DNS and to most
// servers. Case is folded by the host patterns themselves.
func NormalizeHost(host string) string {
	if len(host) > 1 && host[len(host)-1] == '.' {
		return host[:len(host)-1]
	}
	return host
}
