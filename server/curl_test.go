package server

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// curlExamples reads the curl commands of a markdown text's sh code
// blocks as the shell would (quotes, line continuations, comments,
// $(date +%s), variables assigned in earlier lines such as B='...') and
// returns the requests they send. Files named with @ are read from root.
var assignment = regexp.MustCompile(`(?m)^([A-Z_]+)='([^']*)'$`)

func curlExamples(md, root string) ([]exchange, error) {
	var out []exchange
	vars := map[string]string{}
	parts := strings.Split(md, "```sh\n")
	// Variables assigned in any block (B='Authorization: ...'), for the
	// blocks that use them.
	for _, m := range assignment.FindAllStringSubmatch(md, -1) {
		vars[m[1]] = m[2]
	}
	for _, part := range parts[1:] {
		code, _, _ := strings.Cut(part, "```")
		cmds, err := shellWords(code, vars)
		if err != nil {
			return nil, err
		}
		for _, words := range cmds {
			if len(words) == 1 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
				k, v, _ := strings.Cut(words[0], "=")
				vars[k] = v
				continue
			}
			if len(words) == 0 || words[0] != "curl" {
				continue
			}
			x, err := curlRequest(words[1:], root)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", strings.Join(words, " "), err)
			}
			out = append(out, x)
		}
	}
	return out, nil
}

// shellWords splits code into commands of words: quotes, backslash-newline,
// # comments, $VAR and $(date +%s).
func shellWords(code string, vars map[string]string) ([][]string, error) {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	expand := func(s string, i int) (string, int) { // s[i] == '$'
		if strings.HasPrefix(s[i:], "$(date +%s)") {
			return strconv.FormatInt(time.Now().Unix(), 10), i + len("$(date +%s)")
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		return vars[s[i+1:j]], j
	}
	for i := 0; i < len(code); {
		c := code[i]
		switch {
		case c == '\\' && i+1 < len(code) && code[i+1] == '\n':
			i += 2
		case c == '\n' || c == ';':
			endCmd()
			i++
		case c == ' ' || c == '\t':
			endWord()
			i++
		case c == '#' && !inWord:
			for i < len(code) && code[i] != '\n' {
				i++
			}
		case c == '\'':
			j := strings.IndexByte(code[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", code[i:])
			}
			w.WriteString(code[i+1 : i+1+j])
			inWord = true
			i += j + 2
		case c == '"':
			i++
			for i < len(code) && code[i] != '"' {
				if code[i] == '$' {
					v, next := expand(code, i)
					w.WriteString(v)
					i = next
					continue
				}
				if code[i] == '\\' && i+1 < len(code) {
					i++
				}
				w.WriteByte(code[i])
				i++
			}
			inWord = true
			i++
		case c == '$':
			v, next := expand(code, i)
			w.WriteString(v)
			inWord = true
			i = next
		default:
			w.WriteByte(c)
			inWord = true
			i++
		}
	}
	endCmd()
	return cmds, nil
}

// curlRequest interprets curl's arguments: -H, -d, --data-binary @file,
// --data-urlencode, -X, -e; -s, -o, -w are ignored.
func curlRequest(args []string, root string) (exchange, error) {
	x := exchange{method: "GET"}
	var data []string
	contentType := ""
	method := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			i++
			if i < len(args) {
				return args[i]
			}
			return ""
		}
		switch a {
		case "-s", "-sS", "-v":
		case "-o", "-w":
			next()
		case "-X":
			method = next()
		case "-e":
			x.headers = append(x.headers, "Referer: "+next())
		case "-H":
			h := next()
			if k, v, _ := strings.Cut(h, ":"); strings.EqualFold(k, "Content-Type") {
				contentType = strings.TrimSpace(v)
			}
			x.headers = append(x.headers, h)
		case "-d", "--data", "--data-binary":
			d := next()
			if strings.HasPrefix(d, "@") {
				b, err := os.ReadFile(filepath.Join(root, d[1:]))
				if err != nil {
					return x, err
				}
				d = string(b)
			}
			data = append(data, d)
		case "--data-urlencode":
			k, v, ok := strings.Cut(next(), "=")
			if !ok {
				v, k = k, ""
			}
			d := url.QueryEscape(v)
			if k != "" {
				d = k + "=" + d
			}
			data = append(data, d)
		default:
			if strings.HasPrefix(a, "-") {
				return x, fmt.Errorf("curl option %s not understood by this test", a)
			}
			u := a
			if !strings.Contains(u, "://") {
				u = "http://" + u
			}
			p, err := url.Parse(u)
			if err != nil {
				return x, err
			}
			x.uri = p.RequestURI()
		}
	}
	if len(data) > 0 {
		x.method = "POST"
		x.body = []byte(strings.Join(data, "&"))
		if contentType == "" {
			x.headers = append(x.headers, "Content-Type: application/x-www-form-urlencoded")
		}
	}
	if method != "" {
		x.method = method
	}
	if x.uri == "" {
		return x, fmt.Errorf("no URL")
	}
	x.what = "README: curl " + x.method + " " + x.uri
	return x, nil
}

func TestShellWords(t *testing.T) {
	vars := map[string]string{"B": "Authorization: Bearer x"}
	cmds, err := shellWords("B2='a b'\ncurl -s 'u?a=1&b=2' -H \"$B\" \\\n  -d '{\"t\":'$(date +%s)'}' # c\n", vars)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 2 || cmds[0][0] != "B2=a b" || len(cmds[1]) != 7 || cmds[1][2] != "u?a=1&b=2" || cmds[1][4] != "Authorization: Bearer x" ||
		!strings.HasPrefix(cmds[1][6], `{"t":1`) {
		t.Errorf("%q", cmds)
	}
}
