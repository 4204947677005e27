import Testing
@testable import GhostSync
