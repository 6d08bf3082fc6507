// The desk (being written).
