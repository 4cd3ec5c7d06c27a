// A real graphql-ws client: connects with a token in connectionParams, subscribes to
// cancellationUpdates, prints one line per event, and completes cleanly after `count` events.
// Usage: node subscribe.mjs <ws url> <bearer token> <count>
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, count] = process.argv.slice(2);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
  on: { connected: () => console.log(JSON.stringify({ event: 'connected' })) },
});
let seen = 0;
const query = 'subscription { cancellationUpdates { cursor request { status providerMessage appointment { title status cancelledBy } } } }';
await new Promise((resolve, reject) => {
  const unsubscribe = client.subscribe({ query }, {
    next: (value) => {
      console.log(JSON.stringify({ event: 'next', value }));
      seen += 1;
      if (seen >= Number(count)) unsubscribe();
    },
    error: (error) => reject(error),
    complete: () => resolve(),
  });
});
await client.dispose();
console.log(JSON.stringify({ event: 'complete' }));
