// Preloaded into Node.js test servers (`node --require bind-loopback.cjs server.js`) that
// listen on every interface with no way to choose: a listen() given a port but no host binds
// 127.0.0.1 instead. Our test servers must never be reachable from outside this machine.
"use strict";
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    const first = args[0];
    if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
        const hostGiven = typeof args[1] === "string";
        if (!hostGiven) {
            args.splice(1, 0, "127.0.0.1");
        }
    } else if (first !== null && typeof first === "object" && !Array.isArray(first)) {
        if (first.port !== undefined && first.host === undefined && first.path === undefined) {
            args[0] = { ...first, host: "127.0.0.1" };
        }
    }
    return listen.apply(this, args);
};
