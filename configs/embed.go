// Package configs holds cpafeed's configuration files; cpafeed.yaml is
// embedded in the binary as the default when no file is found on disk.
package configs

import _ "embed"

// Default is configs/cpafeed.yaml as built into the binary.
//
//go:embed cpafeed.yaml
var Default []byte
