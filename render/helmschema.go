package render

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	chart "helm.sh/helm/v4/pkg/chart/v2"
)

// helmSchemaURL is where a chart's values.schema.json is registered for
// validation; Helm uses the same name, so error messages match.
const helmSchemaURL = "file:///values.schema.json"

// validateHelmSchemas checks values against each chart's values.schema.json
// as Helm does, but offline: Helm's validator follows $ref to local files and
// http(s) URLs, which would let a chart read outside the jail or reach the
// network.
func validateHelmSchemas(ch *chart.Chart, values map[string]any) error {
	var sb strings.Builder
	if ch.Schema != nil {
		if err := validateHelmSchema(values, ch.Schema); errors.Is(err, ErrUnsafe) {
			return fmt.Errorf("%s: %w", ch.Name(), err)
		} else if err != nil {
			fmt.Fprintf(&sb, "%s:\n%s", ch.Name(), err)
			if !strings.HasSuffix(sb.String(), "\n") {
				sb.WriteString("\n")
			}
		}
	}
	for _, dep := range ch.Dependencies() {
		raw, ok := values[dep.Name()]
		if !ok || raw == nil {
			continue
		}
		sub, ok := raw.(map[string]any)
		if !ok {
			fmt.Fprintf(&sb, "%s:\ninvalid type for values: expected object (map), got %T\n", dep.Name(), raw)
			continue
		}
		if err := validateHelmSchemas(dep, sub); errors.Is(err, ErrUnsafe) {
			return err
		} else if err != nil {
			sb.WriteString(err.Error() + "\n")
		}
	}
	if sb.Len() > 0 {
		return errors.New(strings.TrimRight(sb.String(), "\n"))
	}
	return nil
}

func validateHelmSchema(values map[string]any, schemaJSON []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unable to validate schema: %v", r)
		}
	}()
	schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return fmt.Errorf("values.schema.json is not valid JSON: %w", err)
	}
	loader := &helmSchemaLoader{}
	compiler := jsonschema.NewCompiler()
	compiler.UseLoader(loader)
	if err := compiler.AddResource(helmSchemaURL, schema); err != nil {
		return err
	}
	validator, err := compiler.Compile(helmSchemaURL)
	if loader.refused != nil {
		// The validator's error does not wrap the loader's.
		return loader.refused
	}
	if err != nil {
		return err
	}
	if err := validator.Validate(values); err != nil {
		msg := strings.TrimPrefix(err.Error(), "jsonschema validation failed with '"+helmSchemaURL+"#'\n")
		return errors.New(msg)
	}
	return nil
}

// helmSchemaLoader resolves only the references that need no I/O. Standard
// meta-schemas are built into the validator and never reach a loader.
type helmSchemaLoader struct {
	refused error // the first reference refused
}

func (l *helmSchemaLoader) Load(url string) (any, error) {
	if strings.HasPrefix(url, "urn:") {
		// Helm accepts unresolved URNs as an always-true schema.
		return true, nil
	}
	err := fmt.Errorf("values.schema.json references %s; renders resolve no files or URLs, so inline the referenced schema: %w", url, ErrUnsafe)
	if l.refused == nil {
		l.refused = err
	}
	return nil, err
}
