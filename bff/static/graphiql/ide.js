// Renders GraphiQL for the Timeavtaler BFF: queries over HTTP, subscriptions over
// graphql-transport-ws, example operations as tabs, and (sandbox) a ready dev token.
(function () {
  var config = JSON.parse(document.getElementById('bff-config').textContent);
  var url = new URL(config.endpoint, window.location.href).toString();
  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: url.replace(/^http/, 'ws'),
    wsConnectionParams: config.connectionParams || {},
  });
  var tabs = config.examples.map(function (example) {
    return { query: example.query, variables: example.variables || '', headers: config.headers || '' };
  });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultTabs: tabs,
      defaultQuery: tabs[0].query,
      defaultHeaders: config.headers || '',
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
    })
  );
})();
