package server

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CheckConfig is `cpafeed config check`: every problem of the file at path
// (as LoadConfig finds them, plus what serve refuses at start: development
// credentials on an address other than loopback), and the effective config
// (defaults filled) when there is none.
func CheckConfig(path string) (Config, []error) {
	raw, err := readConfig(path)
	if err != nil {
		return Config{}, []error{err}
	}
	c, errs := parseConfig(raw)
	if err := c.devCredentialsRefused(); err != nil {
		errs = append(errs, fmt.Errorf("config: %w", err))
	}
	return c, errs
}

// Masked is what YAML shows of a secret: whether it is set, nothing of it.
const Masked = "(masked)"

// YAML renders c as a config file, with every secret (token, identity
// secret, win_secret: any key named token or secret or ending in _token,
// _secret or password) replaced by Masked when mask is set; an empty one
// stays empty. Unmasked, the output loads back into the same Config.
func (c Config) YAML(mask bool) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, err
	}
	if mask {
		maskSecrets(&doc)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("cannot render the config: %w", err)
	}
	return b.Bytes(), enc.Close()
}

// isSecretKey reports whether a config key holds a secret.
func isSecretKey(k string) bool {
	return k == "token" || k == "secret" || k == "password" ||
		strings.HasSuffix(k, "_token") || strings.HasSuffix(k, "_secret") || strings.HasSuffix(k, "_password")
}

func maskSecrets(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isSecretKey(k.Value) && v.Kind == yaml.ScalarNode && v.Value != "" {
				v.Value, v.Tag, v.Style = Masked, "!!str", 0
			}
		}
	}
	for _, c := range n.Content {
		maskSecrets(c)
	}
}
