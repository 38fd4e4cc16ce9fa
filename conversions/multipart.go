package conversions

import (
	"bytes"
	"errors"
)

// maxBoundary bounds a multipart boundary (RFC 2046 allows 70 bytes; Java's
// and curl's are 26 to 46).
const maxBoundary = 200

var (
	errNoBoundary = errors.New("Content-Type has no boundary parameter")
	errMultipart  = errors.New("not multipart/form-data with the boundary of its Content-Type")
)

// decodeMultipart calls fn with the name and the content of each part of a
// multipart/form-data body, in order, as curl -F, PHP's curl with an array
// of fields and Meta's Java SDK send them. contentType is the request's
// header (the boundary is its parameter). The slices alias body. Part
// headers other than Content-Disposition's name are ignored (a file part,
// curl -F data=@events.json, is read as its content), and so are a
// preamble and an epilogue. Lines may end in CRLF or LF. It allocates
// nothing.
func decodeMultipart(body, contentType []byte, fn func(name, value []byte)) error {
	boundary := mediaParam(contentType, "boundary")
	if len(boundary) == 0 || len(boundary) > maxBoundary {
		return errNoBoundary
	}
	// delim is "\n--boundary": every delimiter but a first one at the very
	// start of the body follows a line end.
	var buf [maxBoundary + 3]byte
	delim := append(append(buf[:0], "\n--"...), boundary...)

	var rest []byte
	switch {
	case bytes.HasPrefix(body, delim[1:]):
		rest = body[len(delim)-1:]
	default:
		i := bytes.Index(body, delim)
		if i < 0 {
			return errMultipart
		}
		rest = body[i+len(delim):]
	}
	for {
		// After a delimiter: "--" closes the body; else transport padding
		// (spaces, tabs) and a line end open a part.
		if bytes.HasPrefix(rest, []byte("--")) {
			return nil
		}
		rest = bytes.TrimLeft(rest, " \t")
		switch {
		case bytes.HasPrefix(rest, []byte("\r\n")):
			rest = rest[2:]
		case bytes.HasPrefix(rest, []byte("\n")):
			rest = rest[1:]
		default:
			return errMultipart
		}
		// The part's headers, up to an empty line.
		var name []byte
		for {
			eol := bytes.IndexByte(rest, '\n')
			if eol < 0 {
				return errMultipart
			}
			line := rest[:eol]
			rest = rest[eol+1:]
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(line) == 0 {
				break
			}
			k, v, ok := bytes.Cut(line, []byte(":"))
			if ok && equalFoldASCII(trimSpace(k), "content-disposition") {
				name = mediaParam(v, "name")
			}
		}
		// The content, up to the next delimiter (the line end before it
		// belongs to the delimiter).
		end := bytes.Index(rest, delim)
		if end < 0 {
			return errMultipart
		}
		value := rest[:end]
		value = bytes.TrimSuffix(value, []byte("\r"))
		if name != nil {
			fn(name, value)
		}
		rest = rest[end+len(delim):]
	}
}

// mediaParam returns the value of parameter key (any case) of a header value
// such as `multipart/form-data; boundary=x` or `form-data; name="data"`,
// unquoted (a quoted value is returned as it stands between the quotes), or
// nil.
func mediaParam(h []byte, key string) []byte {
	_, params, ok := bytes.Cut(h, []byte(";"))
	for ok {
		var p []byte
		p, params, ok = cutParam(params)
		k, v, found := bytes.Cut(p, []byte("="))
		if !found || !equalFoldASCII(trimSpace(k), key) {
			continue
		}
		v = trimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v
	}
	return nil
}

// cutParam cuts the next ';'-separated parameter off params, not cutting
// inside a quoted string.
func cutParam(params []byte) (p, rest []byte, more bool) {
	quoted := false
	for i := 0; i < len(params); i++ {
		switch c := params[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ';' && !quoted:
			return params[:i], params[i+1:], true
		}
	}
	return params, nil, false
}
