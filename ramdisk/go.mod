module metalplane/ramdisk

go 1.26
