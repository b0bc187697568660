package plugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
)

// RenderOptions prints the objects a path or app renders to.
type RenderOptions struct {
	*Flags
	genericiooptions.IOStreams

	Output string
	Arg    string
}

// NewCmdRender builds `kubectl gitops render PATH|APP`.
func NewCmdRender(flags *Flags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RenderOptions{Flags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "render PATH|APP",
		Short: "Print the objects a folder, file or app renders to",
		Long: `Render a folder of plain YAML, a Kustomize overlay, a Helm chart or an app of
gitops.yaml, offline, and print the objects as multi-document YAML or a JSON List.`,
		Example: `  kubectl gitops render ./apps/podinfo/overlays/prod
  kubectl gitops render podinfo -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

// Complete takes the argument.
func (o *RenderOptions) Complete(args []string) error {
	o.Arg = args[0]
	return nil
}

// Validate checks the flags.
func (o *RenderOptions) Validate() error {
	if o.Output != "yaml" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: use yaml or json", o.Output)
	}
	return nil
}

// Run renders and prints.
func (o *RenderOptions) Run(ctx context.Context) error {
	t, err := o.resolveTarget(o.Arg)
	if err != nil {
		return err
	}
	res, err := o.render(ctx, t)
	if err != nil {
		return err
	}
	printWarnings(o.ErrOut, res)
	if o.Output == "json" {
		list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}}
		for _, obj := range res.Objects {
			list.Items = append(list.Items, *obj)
		}
		return (&printers.JSONPrinter{}).PrintObj(list, o.Out)
	}
	printer := &printers.YAMLPrinter{}
	for _, obj := range res.Objects {
		if err := printer.PrintObj(runtime.Object(obj), o.Out); err != nil {
			return err
		}
	}
	return nil
}
