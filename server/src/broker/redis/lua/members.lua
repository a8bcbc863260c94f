-- The users present in a room. KEYS: users. Returns their names.
return redis.call('ZRANGEBYSCORE', KEYS[1], int(now_ms()), '+inf')
