"""The peers around the integration, shared by the tests, the demo, the chaos scenarios and the benchmark.

A Novacore server and the site model behind it, a mosquitto with the Ainsite publisher and two
misbehaving MQTT peers, a Home Assistant launcher, and the demo. The rule: everything listens on
127.0.0.1 only and is stopped by what started it.
"""
