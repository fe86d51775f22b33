#!/usr/bin/python3
# The scenarios with pika (Debian's python3-pika), a client nobody
# here wrote, against one node's AMQP URL (argv[1]). Prints one JSON object
# of what it saw; test/cluster/amqp.test.ts compares it with what RabbitMQ
# would give. Exits non-zero on anything unexpected.
import json
import sys

import pika
from pika.exceptions import ChannelClosedByBroker

url = sys.argv[1]
out = {}

conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
server_cancels = 0


def messages(queue):
    """(method, properties, body) from queue, until 5 s pass without one.

    A consumer the broker cancels (basic.cancel: the leader thought this node
    silent, as it may under load) ends pika's generator; its unsettled
    messages go back to the queue. Consume again, as a client does."""
    global server_cancels
    while True:
        for method, props, body in ch.consume(queue, inactivity_timeout=5):
            if method is None:
                return
            yield method, props, body
        server_cancels += 1
        print(f'the broker cancelled the consumer on {queue}; consuming again', file=sys.stderr)

ch.confirm_delivery()

# Publish with confirms, consume with prefetch, ack.
ch.queue_declare('pika-jobs', durable=True, arguments={'x-queue-type': 'quorum'})
confirmed = 0
for i in range(5):
    ch.basic_publish('', 'pika-jobs', f'p{i}'.encode(), pika.BasicProperties(delivery_mode=2))
    confirmed += 1  # basic_publish raises on a nack when confirms are on
out['confirmed'] = confirmed
ch.basic_qos(prefetch_count=2)
consumed = []
for method, props, body in messages('pika-jobs'):
    if body.decode() not in consumed:  # a consumer cancelled before its ack was applied gets it again
        consumed.append(body.decode())
    ch.basic_ack(method.delivery_tag)
    if len(consumed) == 5:
        break
ch.cancel()
out['consumed'] = consumed

# nack with requeue: the message comes back, redelivered.
ch.basic_publish('', 'pika-jobs', b'p-requeue')
requeued = False
first = True
for method, props, body in messages('pika-jobs'):
    if first:
        first = False
        ch.basic_nack(method.delivery_tag, requeue=True)
        continue
    requeued = method.redelivered and body == b'p-requeue'
    ch.basic_ack(method.delivery_tag)
    break
ch.cancel()
out['requeued'] = requeued

# reject without requeue: dead-lettered through an exchange.
ch.exchange_declare('pika-dlx', 'direct', durable=True)
ch.queue_declare('pika-dead', durable=True)
ch.queue_bind('pika-dead', 'pika-dlx', 'dead')
ch.queue_declare('pika-work', durable=True, arguments={'x-dead-letter-exchange': 'pika-dlx', 'x-dead-letter-routing-key': 'dead'})
ch.basic_publish('', 'pika-work', b'p-poison')
for method, props, body in messages('pika-work'):
    ch.basic_reject(method.delivery_tag, requeue=False)
    break
ch.cancel()
dead = None
for _ in range(50):
    method, props, body = ch.basic_get('pika-dead', auto_ack=True)
    if method is not None:
        dead = body.decode() if props.headers and props.headers['x-death'][0]['reason'] == 'rejected' else 'no x-death'
        break
    conn.sleep(0.1)
out['dead_lettered'] = dead

# basic.get, and get-empty.
ch.queue_declare('pika-get', durable=True)
ch.basic_publish('', 'pika-get', b'p-get')
method, props, body = ch.basic_get('pika-get')
out['get'] = body.decode() if method is not None else None
ch.basic_ack(method.delivery_tag)
method, _, _ = ch.basic_get('pika-get')
out['get_empty'] = method is None

# Topic routing.
ch.exchange_declare('pika-topic', 'topic', durable=True)
ch.queue_declare('pika-topic-q', durable=True)
ch.queue_bind('pika-topic-q', 'pika-topic', 'a.*.b')
for rk in ['a.x.b', 'a.x.c', 'a.b']:
    ch.basic_publish('pika-topic', rk, rk.encode())
topic = []
while True:
    method, _, body = ch.basic_get('pika-topic-q', auto_ack=True)
    if method is None:
        break
    topic.append(body.decode())
out['topic'] = topic

# A mismatched redeclare: 406 PRECONDITION_FAILED (the channel closes).
try:
    ch.queue_declare('pika-jobs', durable=True, arguments={'x-delivery-limit': 3})
    out['redeclare'] = 200
except ChannelClosedByBroker as e:
    out['redeclare'] = e.reply_code
# A missing queue: 404 NOT_FOUND.
ch = conn.channel()
try:
    ch.queue_declare('pika-nowhere', passive=True)
    out['missing'] = 200
except ChannelClosedByBroker as e:
    out['missing'] = e.reply_code
conn.close()

# Heartbeats: an idle connection with a 1 s heartbeat stays open past several intervals.
hb = pika.BlockingConnection(pika.URLParameters(url + '?heartbeat=1'))
hch = hb.channel()
hb.sleep(3)
hch.queue_declare('pika-jobs', passive=True)
out['heartbeat'] = hb.is_open
hb.close()

print(json.dumps(out))
