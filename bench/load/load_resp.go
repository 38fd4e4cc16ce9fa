package load

import (
	"bytes"
	"errors"
	"fmt"
)

// errBadResponse is the class of every answer the load generator cannot
// frame: a malformed status line or header, a bad chunk, bytes after the
// answer (it never pipelines, so none may come), an answer too large.
var errBadResponse = errors.New("bad HTTP answer")

// maxResponseHead bounds the status line and headers of an answer.
const maxResponseHead = 64 << 10

// respParser frames one HTTP/1.x answer in a buffer that fills as its bytes
// arrive: it finds the status, whether the connection stays open, and where
// the body is (Content-Length, chunked, or up to the close), and decodes a
// chunked body in place. It reads nothing else of the headers.
//
// advance is called with every byte received so far (b grows between calls,
// its prefix unchanged except by the parser itself); once it reports done,
// b[bodyStart:bodyEnd] is the body.
type respParser struct {
	status   int
	close    bool // the connection closes after this answer
	untilEOF bool // the body runs to the close of the connection
	done     bool

	bodyStart, bodyEnd int

	base    int   // start of the current answer in b (after skipped 1xx answers)
	scan    int   // start of the next header line not yet parsed
	head    int   // end of the header block in b; 0 while incomplete
	length  int64 // Content-Length; -1 when absent
	chunked bool
	// What the header lines parsed so far said (status 0: no status line yet).
	hstatus                       int
	http10, te, keepAlive, hclose bool
	// chunked decoding: raw is the next unparsed byte, out the end of the
	// decoded body (≤ raw: data moves down over the framing), left the data
	// bytes still to come of the current chunk.
	raw   int
	out   int
	left  int64
	state int
}

// Chunked decoding states.
const (
	chunkSize  = iota // a chunk-size line
	chunkData         // left bytes of chunk data
	chunkCRLF         // the CRLF after the data
	chunkTrail        // trailer lines up to the empty one
)

func (p *respParser) reset() { *p = respParser{length: -1} }

// advance parses what b holds; b must start with the answer.
func (p *respParser) advance(b []byte) (done bool, err error) {
	if p.done {
		return true, nil
	}
	for p.head == 0 {
		ok, err := p.parseHead(b)
		if !ok || err != nil {
			return false, err
		}
	}
	switch {
	case p.chunked:
		return p.advanceChunked(b)
	case p.untilEOF:
		return false, nil
	}
	end := int64(p.head) + max(p.length, 0)
	if int64(len(b)) < end {
		return false, nil
	}
	if int64(len(b)) > end {
		return false, fmt.Errorf("%w: %d bytes after the answer", errBadResponse, int64(len(b))-end)
	}
	p.bodyStart, p.bodyEnd, p.done = p.head, int(end), true
	return true, nil
}

// eof is called when the connection closed after b: it completes an answer
// whose body runs to the close, and fails any other incomplete one.
func (p *respParser) eof(b []byte) error {
	if p.done {
		return nil
	}
	if p.head > 0 && p.untilEOF {
		p.bodyStart, p.bodyEnd, p.done = p.head, len(b), true
		return nil
	}
	return errConnClosed
}

// errConnClosed reports a connection closed before the answer was complete.
var errConnClosed = errors.New("connection closed before the answer was complete")

// parseHead parses the header lines received so far, each once, and
// returns true at the end of the header block. A 1xx interim answer is
// skipped: p.head stays 0 and the caller calls again for the next one.
func (p *respParser) parseHead(b []byte) (bool, error) {
	if p.hstatus == 0 {
		// A peer that is not answering HTTP shows in the first bytes.
		if n := min(len(b)-p.base, 5); n > 0 && !bytes.Equal(b[p.base:p.base+n], []byte("HTTP/")[:n]) {
			return false, fmt.Errorf("%w: does not start with HTTP/", errBadResponse)
		}
	}
	for {
		i := bytes.IndexByte(b[p.scan:], '\n')
		if i < 0 {
			if len(b)-p.base > maxResponseHead {
				return false, fmt.Errorf("%w: header block longer than %d bytes", errBadResponse, maxResponseHead)
			}
			return false, nil
		}
		line := b[p.scan : p.scan+i]
		p.scan += i + 1
		if p.scan-p.base > maxResponseHead {
			return false, fmt.Errorf("%w: header block longer than %d bytes", errBadResponse, maxResponseHead)
		}
		if len(line) == 0 || line[len(line)-1] != '\r' {
			return false, fmt.Errorf("%w: header line %q not ended by CRLF", errBadResponse, clip(line))
		}
		line = line[:len(line)-1]
		switch {
		case p.hstatus == 0:
			if err := p.statusLine(line); err != nil {
				return false, err
			}
		case len(line) == 0:
			return true, p.endHead()
		default:
			if err := p.headerLine(line); err != nil {
				return false, err
			}
		}
	}
}

// statusLine parses HTTP/1.x SP 3DIGIT [SP reason].
func (p *respParser) statusLine(line []byte) error {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("%w: status line %q", errBadResponse, clip(line))
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: status line %q", errBadResponse, clip(line))
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return fmt.Errorf("%w: status %d", errBadResponse, status)
	}
	p.hstatus, p.http10 = status, line[7] == '0'
	return nil
}

// headerLine reads a header line: Content-Length, Transfer-Encoding and
// Connection; it checks only the name of the others.
func (p *respParser) headerLine(line []byte) error {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || !token(name) {
		return fmt.Errorf("%w: header line %q", errBadResponse, clip(line))
	}
	if c := name[0] | 0x20; c != 'c' && c != 't' {
		return nil // none of the three it reads
	}
	value = bytes.Trim(value, " \t")
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		n, ok := parseLength(value)
		if !ok || p.length >= 0 && n != p.length {
			return fmt.Errorf("%w: Content-Length %q", errBadResponse, clip(value))
		}
		p.length = n
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		p.te = true
		p.chunked = lastToken(value, "chunked")
	case bytes.EqualFold(name, []byte("Connection")):
		for tok := range bytes.SplitSeq(value, []byte(",")) {
			tok = bytes.Trim(tok, " \t")
			p.hclose = p.hclose || bytes.EqualFold(tok, []byte("close"))
			p.keepAlive = p.keepAlive || bytes.EqualFold(tok, []byte("keep-alive"))
		}
	}
	return nil
}

// endHead decides the framing of the body once the header block has ended
// at p.scan, or starts over after an interim answer.
func (p *respParser) endHead() error {
	status := p.hstatus
	if status < 200 {
		if status == 101 {
			return fmt.Errorf("%w: status 101 (it never asks to switch protocols)", errBadResponse)
		}
		// An interim answer (100 Continue, 103 Early Hints): the final one
		// follows.
		*p = respParser{length: -1, base: p.scan, scan: p.scan}
		return nil
	}
	end := p.scan
	p.status, p.head = status, end
	p.close = p.hclose || p.http10 && !p.keepAlive
	switch {
	case status == 204 || status == 304:
		p.length, p.chunked = 0, false
	case p.te && p.chunked:
		p.raw, p.out = end, end
	case p.te:
		// A transfer coding other than chunked last: the body runs to
		// the close (RFC 9112, section 6.3).
		p.untilEOF, p.close = true, true
	case p.length >= 0:
	default:
		p.untilEOF, p.close = true, true
	}
	return nil
}

// advanceChunked decodes the chunks received so far, moving their data
// down to p.out.
func (p *respParser) advanceChunked(b []byte) (bool, error) {
	for {
		switch p.state {
		case chunkSize, chunkTrail:
			i := bytes.Index(b[p.raw:], []byte("\r\n"))
			if i < 0 {
				if len(b)-p.raw > 4096 {
					return false, fmt.Errorf("%w: chunk line longer than 4096 bytes", errBadResponse)
				}
				return false, nil
			}
			line := b[p.raw : p.raw+i]
			p.raw += i + 2
			if p.state == chunkTrail {
				if len(line) > 0 {
					continue // a trailer field: ignored
				}
				if p.raw != len(b) {
					return false, fmt.Errorf("%w: %d bytes after the answer", errBadResponse, len(b)-p.raw)
				}
				p.bodyStart, p.bodyEnd, p.done = p.head, p.out, true
				return true, nil
			}
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = line[:j] // chunk extensions: ignored
			}
			n, ok := parseHex(bytes.TrimRight(line, " \t"))
			if !ok {
				return false, fmt.Errorf("%w: chunk size %q", errBadResponse, clip(line))
			}
			if n == 0 {
				p.state = chunkTrail
			} else {
				p.left, p.state = n, chunkData
			}
		case chunkData:
			k := min(p.left, int64(len(b)-p.raw))
			if k == 0 {
				return false, nil
			}
			if p.out != p.raw {
				copy(b[p.out:], b[p.raw:p.raw+int(k)])
			}
			p.out += int(k)
			p.raw += int(k)
			if p.left -= k; p.left == 0 {
				p.state = chunkCRLF
			}
		case chunkCRLF:
			if len(b)-p.raw < 2 {
				return false, nil
			}
			if b[p.raw] != '\r' || b[p.raw+1] != '\n' {
				return false, fmt.Errorf("%w: no CRLF after chunk data", errBadResponse)
			}
			p.raw += 2
			p.state = chunkSize
		}
	}
}

// token reports whether name is a non-empty header name without blanks or
// control characters.
func token(name []byte) bool {
	for _, c := range name {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return len(name) > 0
}

// parseLength parses a Content-Length: 1 to 15 decimal digits.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseHex parses a chunk size: 1 to 15 hex digits.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// lastToken reports whether the last comma-separated token of v is tok
// (case-insensitive).
func lastToken(v []byte, tok string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return bytes.EqualFold(bytes.Trim(v, " \t"), []byte(tok))
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
