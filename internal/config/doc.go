// Package config owns the repository file, gitops.yaml: its schema, finding it
// upward from a path, loading it with line numbers, defaults, and validation
// that names the file, line and field of every problem and says how to fix it.
//
// Loading is safe on untrusted input (a pull request's head): the file size is
// capped, alias expansion is bounded, and unknown fields are errors.
package config
