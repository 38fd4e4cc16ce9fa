package conversions

// decodeForm decodes an application/x-www-form-urlencoded string (a body or a
// query string), appending to buf, and calls fn for each key=value pair in
// order. The slices passed to fn alias buf; buf grows at most once, before
// the first pair (decoded text is never longer than its encoding), so the
// caller may keep them until it reuses buf. To keep slices of an earlier call
// valid, give buf room for both beforehand. It returns buf; the caller clears
// it when done (it holds clear PII).
func decodeForm(buf, s []byte, fn func(k, v []byte)) []byte {
	if cap(buf)-len(buf) < len(s) {
		nb := make([]byte, len(buf), len(buf)+len(s))
		copy(nb, buf)
		clear(buf)
		buf = nb
	}
	for len(s) > 0 {
		var pair []byte
		if i := indexByte(s, '&'); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			pair, s = s, nil
		}
		if len(pair) == 0 {
			continue
		}
		k, v := pair, []byte(nil)
		if i := indexByte(pair, '='); i >= 0 {
			k, v = pair[:i], pair[i+1:]
		}
		ks := len(buf)
		buf = appendUnescape(buf, k)
		vs := len(buf)
		buf = appendUnescape(buf, v)
		fn(buf[ks:vs:vs], buf[vs:len(buf):len(buf)])
	}
	return buf
}

func indexByte(s []byte, c byte) int {
	for i, x := range s {
		if x == c {
			return i
		}
	}
	return -1
}

// appendUnescape appends s with '+' as space and %XX decoded; a malformed
// escape is kept literally.
func appendUnescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(s) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0:
			c = byte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		}
		dst = append(dst, c)
	}
	return dst
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
