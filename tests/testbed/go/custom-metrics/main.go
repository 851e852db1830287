// Command custom-metrics serves custom.metrics.k8s.io and external.metrics.k8s.io on the test bed.
//
// It is upstream's adapter library (sigs.k8s.io/custom-metrics-apiserver) with the test provider
// from the same module, which serves the custom metric values written to it over HTTP. Two things
// that provider lacks are added here, nothing else:
//   - external metric values are written over HTTP too (the test provider only serves three fixed
//     ones): POST /write-metrics/external/namespaces/NAMESPACE/METRIC?labels=k=v,... with a quantity
//     as the body replaces the value of that metric with exactly those labels;
//   - the write endpoint listens on --write-address (the test provider binds :8080 on every
//     interface; the bed only ever listens on 127.0.0.1 and each bed needs its own port).
//
// Custom metric values are written as the test provider takes them:
// POST /write-metrics/namespaces/NAMESPACE/RESOURCE/NAME/METRIC, e.g. RESOURCE = pods or
// ingresses.networking.k8s.io, with a quantity as the body (JSON: 5 or "500m").
package main

import (
	"context"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/emicklei/go-restful/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/external_metrics"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
	testprovider "sigs.k8s.io/custom-metrics-apiserver/test-adapter/provider"
)

// externalKey names one written external series: its namespace, metric and exact label set.
type externalKey struct {
	namespace, metric, labels string
}

type externalValue struct {
	labels    labels.Set
	value     resource.Quantity
	timestamp metav1.Time
}

// bedProvider serves custom metrics through upstream's test provider and external metrics from
// the values written to it.
type bedProvider struct {
	provider.CustomMetricsProvider

	lock     sync.RWMutex
	external map[externalKey]externalValue
}

func (p *bedProvider) GetExternalMetric(_ context.Context, namespace string, selector labels.Selector, info provider.ExternalMetricInfo) (*external_metrics.ExternalMetricValueList, error) {
	p.lock.RLock()
	defer p.lock.RUnlock()
	items := []external_metrics.ExternalMetricValue{}
	for key, v := range p.external {
		if key.namespace == namespace && key.metric == info.Metric && selector.Matches(v.labels) {
			items = append(items, external_metrics.ExternalMetricValue{
				MetricName: key.metric, MetricLabels: v.labels, Timestamp: v.timestamp, Value: v.value,
			})
		}
	}
	sort.Slice(items, func(i, j int) bool {
		return labels.Set(items[i].MetricLabels).String() < labels.Set(items[j].MetricLabels).String()
	})
	return &external_metrics.ExternalMetricValueList{Items: items}, nil
}

func (p *bedProvider) ListAllExternalMetrics() []provider.ExternalMetricInfo {
	p.lock.RLock()
	defer p.lock.RUnlock()
	seen := map[string]bool{}
	infos := []provider.ExternalMetricInfo{}
	for key := range p.external {
		if !seen[key.metric] {
			seen[key.metric] = true
			infos = append(infos, provider.ExternalMetricInfo{Metric: key.metric})
		}
	}
	return infos
}

func (p *bedProvider) writeExternal(request *restful.Request, response *restful.Response) {
	value := new(resource.Quantity)
	if err := request.ReadEntity(value); err != nil {
		_ = response.WriteErrorString(http.StatusBadRequest, "the body must be a quantity: "+err.Error())
		return
	}
	set, err := labels.ConvertSelectorToLabelsMap(request.QueryParameter("labels"))
	if err != nil {
		_ = response.WriteErrorString(http.StatusBadRequest, "labels: "+err.Error())
		return
	}
	key := externalKey{request.PathParameter("namespace"), request.PathParameter("metric"), set.String()}
	p.lock.Lock()
	defer p.lock.Unlock()
	p.external[key] = externalValue{labels: set, value: *value, timestamp: metav1.Now()}
}

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()

	adapter := &basecmd.AdapterBase{Name: "ballast-testbed-custom-metrics"}
	var writeAddress string
	adapter.Flags().StringVar(&writeAddress, "write-address", "127.0.0.1:8080", "where metric values are written (HTTP)")
	logs.AddFlags(adapter.Flags())
	if err := adapter.Flags().Parse(os.Args); err != nil {
		klog.Fatalf("unable to parse flags: %v", err)
	}

	client, err := adapter.DynamicClient()
	if err != nil {
		klog.Fatalf("unable to construct dynamic client: %v", err)
	}
	mapper, err := adapter.RESTMapper()
	if err != nil {
		klog.Fatalf("unable to construct discovery REST mapper: %v", err)
	}
	custom, writes := testprovider.NewFakeProvider(client, mapper)
	bed := &bedProvider{CustomMetricsProvider: custom, external: map[externalKey]externalValue{}}
	writes.Route(writes.POST("/external/namespaces/{namespace}/{metric}").To(bed.writeExternal))
	adapter.WithCustomMetrics(bed)
	adapter.WithExternalMetrics(bed)

	container := restful.NewContainer()
	container.Add(writes)
	go func() {
		server := &http.Server{Addr: writeAddress, Handler: container, ReadHeaderTimeout: 3 * time.Second}
		klog.Fatal(server.ListenAndServe())
	}()
	if err := adapter.Run(genericapiserver.SetupSignalContext()); err != nil {
		klog.Fatalf("unable to run the custom metrics adapter: %v", err)
	}
}
