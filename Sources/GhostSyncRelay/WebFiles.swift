import GhostSync

/// The files the relay's WebSocket port serves over plain HTTP (`Web/`, embedded at build time):
/// the demo page and the JavaScript client with its type declarations.
public enum WebFiles {
    public static var resources: [String: HTTPResource] {
        let page = HTTPResource(contentType: "text/html; charset=utf-8", body: PackageResources.index_html)
        return [
            "/": page,
            "/index.html": page,
            "/demo.js": HTTPResource(contentType: "text/javascript; charset=utf-8", body: PackageResources.demo_js),
            "/demo.css": HTTPResource(contentType: "text/css; charset=utf-8", body: PackageResources.demo_css),
            "/ghost-sync.js": HTTPResource(contentType: "text/javascript; charset=utf-8", body: PackageResources.ghost_sync_js),
            "/ghost-sync.d.ts": HTTPResource(contentType: "application/typescript; charset=utf-8", body: PackageResources.ghost_sync_d_ts),
        ]
    }
}
